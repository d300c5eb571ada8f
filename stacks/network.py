"""Network of the cluster: a VPC over two AZs, the cluster's subnet in each, S3 gateway endpoint, flow logs.

Two AZs: the instance fleets take every subnet (Ec2SubnetIds) and EMR launches the cluster in the AZ that
has capacity for it, so an InsufficientInstanceCapacity in one AZ no longer fails the deploy. Two, not
three: the stacks are environment-agnostic (region only, no lookups), and CDK then selects two AZs with
Fn::GetAZs, which every account has in every region.

Two designs, chosen with the `egress` context key:

- `none` (default): no route to the internet at all. No internet gateway, no NAT, no public subnet: one
  isolated subnet for the cluster. What the nodes fetch comes from S3 through the gateway endpoint (our
  assets and data; Amazon Linux's and EMR's repositories are S3 buckets too), and KMS (local-disk
  encryption, called from each node) through an interface endpoint whose security group admits HTTPS
  from the cluster's primary and core groups only; it has a network interface in each subnet (billed per
  AZ-hour), so a node reaches KMS in its own AZ. EMR's control plane reaches the nodes through the
  service-access group, not through the internet.
- `nat`: public subnets, one NAT gateway, and the cluster's private subnets routed through it (for users
  whose job needs the internet; AWS services other than S3 and KMS then go through the NAT). One NAT, not
  one per AZ: a second costs another $0.05/h + $0.005/h for its IPv4 address for the whole life of the
  stack, while the traffic it would save is the cross-AZ hop ($0.01/GB) of what a job fetches from the
  internet (the runtime comes from S3 either way). The cost: if the NAT's AZ fails, the other AZ's
  nodes lose the internet too; the cluster lives in one AZ anyway (EMR picks one per cluster).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.instance_types import AZ_COUNT

HTTPS_PORT = 443
# The VPC's address range: a literal, so rules that name it (EMR 8's service endpoint admits HTTPS from the
# VPC: stacks/security_groups.py) are plain CIDR rules cdk-nag and cfn-lint can read.
VPC_CIDR = "10.42.0.0/16"


class Network(Construct):
    """VPC for a transient EMR cluster; `emr_subnets` are where the cluster may go (one per AZ)."""

    def __init__(self, scope: Construct, construct_id: str, *, egress: str) -> None:
        super().__init__(scope, construct_id)
        self.egress = egress
        self.cidr = VPC_CIDR
        if egress == "nat":
            emr_type = ec2.SubnetType.PRIVATE_WITH_EGRESS
            subnets = [
                ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="Emr", subnet_type=emr_type, cidr_mask=20),
            ]
        elif egress == "none":
            emr_type = ec2.SubnetType.PRIVATE_ISOLATED
            subnets = [ec2.SubnetConfiguration(name="Emr", subnet_type=emr_type, cidr_mask=20)]
        else:  # AppConfig validates the key; this guards other callers
            raise ValueError(f"egress must be none or nat, got {egress!r}")
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            max_azs=AZ_COUNT,
            nat_gateways=1 if egress == "nat" else 0,
            subnet_configuration=subnets,
        )
        self.emr_subnet_selection = ec2.SubnetSelection(subnet_type=emr_type)
        self.emr_subnets = self.vpc.select_subnets(subnet_type=emr_type).subnets
        self.s3_endpoint = self.vpc.add_gateway_endpoint(
            "S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.emr_subnet_selection]
        )
        self.kms_endpoint: ec2.InterfaceVpcEndpoint | None = None
        self.flow_log_group = logs.LogGroup(
            self,
            "FlowLogGroup",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_log_group),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )

    def add_kms_endpoint(self, clients: list[ec2.ISecurityGroup]) -> ec2.InterfaceVpcEndpoint:
        """KMS interface endpoint (private DNS: the SDK's default kms.<region>.amazonaws.com resolves to it)
        admitting HTTPS from `clients` only, and sending nothing out."""
        group = ec2.SecurityGroup(
            self,
            "KmsEndpointSecurityGroup",
            vpc=self.vpc,
            description="KMS interface endpoint: HTTPS from the EMR primary and core groups only",
            allow_all_outbound=False,
        )
        for client in clients:
            group.add_ingress_rule(client, ec2.Port.tcp(HTTPS_PORT), "HTTPS to KMS from EMR nodes")
        self.kms_endpoint = self.vpc.add_interface_endpoint(
            "Kms",
            service=ec2.InterfaceVpcEndpointAwsService.KMS,
            subnets=self.emr_subnet_selection,
            security_groups=[group],
            private_dns_enabled=True,
            open=False,
        )
        self.kms_endpoint_group = group
        return self.kms_endpoint

    def rule_resources(self) -> list[ec2.CfnSecurityGroupIngress | ec2.CfnSecurityGroupEgress]:
        """The standalone rule resources of the endpoint's group (they name the EMR groups as sources)."""
        return [
            child
            for child in self.node.find_all()
            if isinstance(child, ec2.CfnSecurityGroupIngress | ec2.CfnSecurityGroupEgress)
        ]
