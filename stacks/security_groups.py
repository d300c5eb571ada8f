"""The three EMR-managed security groups of a private-subnet cluster, with exactly the documented rules of the
release line (stacks/release_lines.py: ReleaseLine.service_endpoint).

Both lines (https://docs.aws.amazon.com/emr/latest/ManagementGuide/emr-man-sec-groups.html, private subnets):
- primary (ElasticMapReduce-Master-Private) and core (ElasticMapReduce-Slave-Private): all ICMP, TCP and
  UDP from primary and core (each other and themselves); all outbound (EMR control plane, S3, KMS; the
  internet too when egress=nat).

emr-7.x (the same page):
- primary and core: TCP 8443 from service access;
- service access (ElasticMapReduce-ServiceAccess): inbound TCP 9443 from primary; outbound TCP 8443 to
  primary and core only.

emr-spark-8.x (https://docs.aws.amazon.com/emr/latest/ReleaseGuide/emr-spark800-release.html): EMR provisions
a VPC endpoint to its service (aws.api.<region>.emr-service-cell01) in the cluster's VPC; the service-access
group takes "inbound HTTPS (port 443) from the VPC CIDR", the primary node needs outbound 443 to the service
access group (its all-outbound rule covers it), and "the port 8443/9443 rules ... are no longer required":
none is made. The service access group sends nothing out (the endpoint answers on the connections it
accepted).

No rule admits an address range outside the VPC: no SSH, no public ingress. Passing all three groups to the
cluster keeps EMR from creating default groups outside CloudFormation (which would block the VPC's deletion).
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

EMR_CONTROL_PORT = 8443  # emr-7.x: EMR service -> cluster nodes (through service access)
SERVICE_ACCESS_PORT = 9443  # emr-7.x: primary -> service access
SERVICE_ENDPOINT_PORT = 443  # emr-spark-8.x: the VPC -> EMR's service endpoint (in the service access group)


class EmrSecurityGroups(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        service_endpoint: bool = False,
        vpc_cidr: str | None = None,
    ) -> None:
        """service_endpoint: the emr-spark-8.x rules (the module docstring); they admit HTTPS from `vpc_cidr`,
        the VPC's range as a literal (a token would leave cdk-nag's EC23 unable to read the rule)."""
        super().__init__(scope, construct_id)
        self.service_endpoint = service_endpoint
        from_service = "HTTPS to the EMR service endpoint" if service_endpoint else "8443 from service access"
        traffic = "(private subnet): cluster traffic from primary/core"
        self.primary = ec2.SecurityGroup(
            self,
            "Primary",
            vpc=vpc,
            description=f"EMR primary node {traffic}, {from_service}",
            allow_all_outbound=True,
        )
        self.core = ec2.SecurityGroup(
            self,
            "Core",
            vpc=vpc,
            description=f"EMR core nodes {traffic}, {from_service}",
            allow_all_outbound=True,
        )
        self.service_access = ec2.SecurityGroup(
            self,
            "ServiceAccess",
            vpc=vpc,
            description="EMR service access (private subnet): the EMR service endpoint, HTTPS from the VPC"
            if service_endpoint
            else "EMR service access (private subnet): 9443 from primary, 8443 out to primary/core",
            allow_all_outbound=False,
        )
        nodes = (("primary", self.primary), ("core", self.core))
        for _, target in nodes:
            for source_name, source in nodes:
                target.add_ingress_rule(source, ec2.Port.all_icmp(), f"All ICMP from EMR {source_name}")
                target.add_ingress_rule(source, ec2.Port.all_tcp(), f"All TCP from EMR {source_name}")
                target.add_ingress_rule(source, ec2.Port.all_udp(), f"All UDP from EMR {source_name}")
        if service_endpoint:
            if vpc_cidr is None:
                raise ValueError("service_endpoint needs vpc_cidr, the VPC's address range")
            self.service_access.add_ingress_rule(
                ec2.Peer.ipv4(vpc_cidr),
                ec2.Port.tcp(SERVICE_ENDPOINT_PORT),
                "HTTPS from the VPC to the EMR service endpoint (EMR 8)",
            )
            return
        for _, target in nodes:
            target.add_ingress_rule(
                self.service_access, ec2.Port.tcp(EMR_CONTROL_PORT), "EMR service via service access"
            )
        self.service_access.add_ingress_rule(
            self.primary, ec2.Port.tcp(SERVICE_ACCESS_PORT), "EMR primary to service access"
        )
        for name, target in nodes:
            self.service_access.add_egress_rule(
                target, ec2.Port.tcp(EMR_CONTROL_PORT), f"EMR service to {name}"
            )

    @property
    def all(self) -> list[ec2.SecurityGroup]:
        return [self.primary, self.core, self.service_access]

    def rule_resources(self) -> list[ec2.CfnSecurityGroupIngress | ec2.CfnSecurityGroupEgress]:
        """The standalone rule resources CDK made for the group-to-group rules above."""
        return [
            child
            for child in self.node.find_all()
            if isinstance(child, ec2.CfnSecurityGroupIngress | ec2.CfnSecurityGroupEgress)
        ]
