"""The three EMR-managed security groups of a private-subnet cluster, with exactly the documented rules.

https://docs.aws.amazon.com/emr/latest/ManagementGuide/emr-man-sec-groups.html (private subnets):
- primary (ElasticMapReduce-Master-Private) and core (ElasticMapReduce-Slave-Private): all ICMP, TCP and
  UDP from primary and core (each other and themselves); TCP 8443 from service access; all outbound
  (EMR control plane, S3, KMS; the internet too when egress=nat).
- service access (ElasticMapReduce-ServiceAccess): inbound TCP 9443 from primary; outbound TCP 8443 to
  primary and core only.
No rule admits any address range: no SSH, no public ingress. Passing all three groups to the cluster keeps
EMR from creating default groups outside CloudFormation (which would block the VPC's deletion).
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

EMR_CONTROL_PORT = 8443  # EMR service -> cluster nodes (through service access)
SERVICE_ACCESS_PORT = 9443  # primary -> service access


class EmrSecurityGroups(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc) -> None:
        super().__init__(scope, construct_id)
        self.primary = ec2.SecurityGroup(
            self,
            "Primary",
            vpc=vpc,
            description="EMR primary node (private subnet): cluster traffic from primary/core, 8443 from "
            "service access",
            allow_all_outbound=True,
        )
        self.core = ec2.SecurityGroup(
            self,
            "Core",
            vpc=vpc,
            description="EMR core nodes (private subnet): cluster traffic from primary/core, 8443 from "
            "service access",
            allow_all_outbound=True,
        )
        self.service_access = ec2.SecurityGroup(
            self,
            "ServiceAccess",
            vpc=vpc,
            description="EMR service access (private subnet): 9443 from primary, 8443 out to primary/core",
            allow_all_outbound=False,
        )
        nodes = (("primary", self.primary), ("core", self.core))
        for _, target in nodes:
            for source_name, source in nodes:
                target.add_ingress_rule(source, ec2.Port.all_icmp(), f"All ICMP from EMR {source_name}")
                target.add_ingress_rule(source, ec2.Port.all_tcp(), f"All TCP from EMR {source_name}")
                target.add_ingress_rule(source, ec2.Port.all_udp(), f"All UDP from EMR {source_name}")
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
