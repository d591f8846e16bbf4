"""Who may say what on the broker: each node's credentials, and the ACL plan that holds it
to its own topic, its own consumer group and the topics its messages go to.

Every node is a principal of its own, named like the node (``User:hub``,
``User:region-360400``, ``User:hospitals-360400``); the driver, which plays the outside
world, is ``User:sim``; ``User:admin`` is the broker's super user, which creates the topics
and the ACLs. A broker with an authorizer and ``allow.everyone.if.no.acl.found=false``
refuses anything the plan does not grant. The plan follows the routing of the handlers:

- the hub reads ``{prefix}.hub`` and writes every region's topic (filings, admissions,
  settlements, reconciliation, clearing) and the policy table ``{prefix}.policies``;
- a region reads its own topic and the policy table, and writes the hub's topic and its own
  hospitals' topic, and the hospitals' topic of every region that treats its insured (the
  refusal of a manual reimbursement goes back to the hospital node that filed it);
- a region's hospital node reads its own topic and writes its own region's topic, and the
  topic of every region whose insured it treats: a patient with no direct settlement is
  reimbursed at home, and the hospital node files that manual reimbursement with the
  insuring region on the patient's behalf;
- the driver writes where the outside world sends: the hub (the calendar's reconciliation
  and clearing), every region (filings), every region's hospitals (patients), and may see
  the policy table and the dead-letter topic exist (it checks that every topic is there
  before it starts);
- every node writes the dead-letter topic ``{prefix}.dlq`` (what it refuses is parked
  there); people read it with ``clearsim dlq`` as the admin.

Each node reads in the consumer group named like its topic and in no other. Which regions'
insured a hospital node treats comes from the scenario's claims; without them (a generated
workload) any region's insured may come, and every hospital node may write to every region.

Clients take their credentials from the environment only (``credentials_from_env``):
``CLEARSIM_KAFKA_USER``, ``CLEARSIM_KAFKA_PASSWORD`` and ``CLEARSIM_KAFKA_MECHANISM``
(``SCRAM-SHA-256`` unless told); with none, a client speaks PLAINTEXT as before.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from clearsim.bus.topics import (dlq_topic, hospitals_topic, hub_topic, policies_topic,
                                 region_topic)
from clearsim.errors import ClearsimError, ErrorCode
from clearsim.messages import HUB, SIM, hospitals_node, region_node

ADMIN = "admin"              # the broker's super user: topics and ACLs
DRIVER = SIM                 # the outside world's principal
MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
DEFAULT_MECHANISM = "SCRAM-SHA-256"
ENV_USER = "CLEARSIM_KAFKA_USER"
ENV_PASSWORD = "CLEARSIM_KAFKA_PASSWORD"
ENV_MECHANISM = "CLEARSIM_KAFKA_MECHANISM"
# What a user name and a password may hold: enough for generated secrets and node ids, and
# nothing the broker's configuration syntax (JAAS options, --add-scram's [name=...,
# password=...]) would read as a delimiter.
SAFE = re.compile(r"[A-Za-z0-9._~-]+")


@dataclass(frozen=True)
class Credentials:
    """A SASL/SCRAM user name and password (the password never shows in a repr)."""

    user: str
    password: str = field(repr=False)
    mechanism: str = DEFAULT_MECHANISM

    def __post_init__(self):
        if self.mechanism not in MECHANISMS:
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                f"SASL mechanism {self.mechanism!r} is not one clearsim speaks "
                                f"(one of: {', '.join(MECHANISMS)})", ENV_MECHANISM)
        for value, what, env in ((self.user, "user name", ENV_USER),
                                 (self.password, "password", ENV_PASSWORD)):
            if not SAFE.fullmatch(value or ""):
                raise ClearsimError(ErrorCode.INVALID_INPUT,
                                    f"a Kafka {what} must be letters, digits and . _ ~ - "
                                    "only, and not empty", env)

    @property
    def principal(self) -> str:
        return f"User:{self.user}"

    def environment(self) -> dict[str, str]:
        """The environment a client process is given to speak as this user."""
        return {ENV_USER: self.user, ENV_PASSWORD: self.password,
                ENV_MECHANISM: self.mechanism}


def credentials_from_env(env: Mapping[str, str] | None = None) -> Credentials | None:
    """The credentials ``env`` (default: this process's environment) gives, or None when it
    gives none (PLAINTEXT). A user without a password, or the reverse, is refused."""
    env = os.environ if env is None else env
    user, password = env.get(ENV_USER) or "", env.get(ENV_PASSWORD) or ""
    if not user and not password:
        return None
    if not user or not password:
        missing = ENV_USER if not user else ENV_PASSWORD
        raise ClearsimError(ErrorCode.INVALID_INPUT,
                            f"{ENV_USER} and {ENV_PASSWORD} go together: {missing} is not "
                            "set", missing)
    return Credentials(user, password, env.get(ENV_MECHANISM) or DEFAULT_MECHANISM)


def new_password() -> str:
    return secrets.token_urlsafe(18)


def generate(users: Iterable[str], mechanism: str = DEFAULT_MECHANISM) -> dict[str, Credentials]:
    """A fresh random password for each of ``users``."""
    return {user: Credentials(user, new_password(), mechanism) for user in users}


# -- the plan ------------------------------------------------------------------------------

class Operation(str, Enum):
    READ = "READ"
    WRITE = "WRITE"
    DESCRIBE = "DESCRIBE"


class Resource(str, Enum):
    TOPIC = "TOPIC"
    GROUP = "GROUP"


@dataclass(frozen=True, order=True)
class Grant:
    """One ACL: ``user`` is allowed ``operation`` on the topic or group named ``name``
    (a literal name, never a prefix or a wildcard)."""

    user: str
    operation: Operation
    resource: Resource
    name: str

    @property
    def principal(self) -> str:
        return f"User:{self.user}"

    def __str__(self) -> str:
        return f"{self.principal} {self.operation.value} {self.resource.value} {self.name}"


@dataclass(frozen=True)
class AclPlan:
    prefix: str
    topics: tuple[str, ...]          # every topic of the run: the admin creates them
    grants: frozenset[Grant]

    def users(self) -> list[str]:
        """Every principal the plan grants something to (the admin needs nothing)."""
        return sorted({g.user for g in self.grants})

    def allows(self, user: str, operation: Operation, resource: Resource, name: str) -> bool:
        """Whether the plan lets ``user`` do it: as on Kafka, READ or WRITE imply DESCRIBE."""
        implied = {operation}
        granted = {g.operation for g in self.grants
                   if g.user == user and g.resource is resource and g.name == name}
        if operation is Operation.DESCRIBE:
            implied |= {Operation.READ, Operation.WRITE}
        return bool(granted & implied)

    def _names(self, user: str, operation: Operation, resource: Resource) -> set[str]:
        return {g.name for g in self.grants
                if g.user == user and g.operation is operation and g.resource is resource}

    def reads(self, user: str) -> set[str]:
        return self._names(user, Operation.READ, Resource.TOPIC)

    def writes(self, user: str) -> set[str]:
        return self._names(user, Operation.WRITE, Resource.TOPIC)

    def groups(self, user: str) -> set[str]:
        return self._names(user, Operation.READ, Resource.GROUP)


def plan(prefix: str, regions: Iterable[str], hospitals: Iterable[str] | None = None,
         treated: Mapping[str, Iterable[str]] | None = None) -> AclPlan:
    """The ACL plan of a run on ``prefix``: ``regions`` (their codes), the regions with a
    hospital node (``hospitals``; default every region) and, for each of those, the regions
    whose insured its hospitals treat (``treated``; None: any region's)."""
    regions = sorted(set(regions))
    hospitals = regions if hospitals is None else sorted(set(hospitals))
    unknown = sorted(set(hospitals) - set(regions))
    if unknown:
        raise ValueError(f"hospital nodes of regions that are not in the run: {unknown}")
    insuring = {code: set(regions) if treated is None else
                {code} | (set(treated.get(code, ())) & set(regions))
                for code in hospitals}
    grants: set[Grant] = set()

    def allow(user: str, operation: Operation, resource: Resource, *names: str) -> None:
        grants.update(Grant(user, operation, resource, name) for name in names)

    def reads(user: str, own: str, *more: str) -> None:
        allow(user, Operation.READ, Resource.TOPIC, own, *more)
        allow(user, Operation.READ, Resource.GROUP, own)   # its group is named like its topic

    def writes(user: str, *topics: str) -> None:
        allow(user, Operation.WRITE, Resource.TOPIC, *topics)

    reads(HUB, hub_topic(prefix))
    writes(HUB, policies_topic(prefix), *(region_topic(prefix, r) for r in regions))
    for code in regions:
        node = region_node(code)
        reads(node, region_topic(prefix, code), policies_topic(prefix))
        writes(node, hub_topic(prefix),
               *(hospitals_topic(prefix, t) for t in hospitals if code in insuring[t]))
    for code in hospitals:
        node = hospitals_node(code)
        reads(node, hospitals_topic(prefix, code))
        writes(node, *(region_topic(prefix, r) for r in insuring[code]))
    writes(DRIVER, hub_topic(prefix), *(region_topic(prefix, r) for r in regions),
           *(hospitals_topic(prefix, h) for h in hospitals))
    allow(DRIVER, Operation.DESCRIBE, Resource.TOPIC, policies_topic(prefix),
          dlq_topic(prefix))
    # Every node parks what it refuses on the dead-letter topic; people read it (admin).
    writes(HUB, dlq_topic(prefix))
    for node in [region_node(c) for c in regions] + [hospitals_node(c) for c in hospitals]:
        writes(node, dlq_topic(prefix))
    topics = ([hub_topic(prefix), policies_topic(prefix), dlq_topic(prefix)]
              + [region_topic(prefix, r) for r in regions]
              + [hospitals_topic(prefix, h) for h in hospitals])
    return AclPlan(prefix, tuple(topics), frozenset(grants))


def plan_for(scenario, claims, prefix: str) -> AclPlan:
    """The plan of ``scenario`` run on ``prefix`` with ``claims`` (the parsed claims the
    nodes are given; None for a generated workload, whose insured may come from anywhere)."""
    from clearsim.sim.claims import Claim

    hospital_regions = {h.region for h in scenario.hospitals.values()}
    treated = None
    if claims is not None:
        treated = {code: set() for code in hospital_regions}
        for claim in claims:
            if isinstance(claim, Claim) and claim.hospital in scenario.hospitals:
                treated[scenario.hospitals[claim.hospital].region].add(
                    claim.person.insuring_region)
    return plan(prefix, scenario.regions, hospital_regions, treated)


# -- a one-shot job: create the topics and the ACLs of a scenario ----------------------------

def main(argv: list[str] | None = None) -> int:
    """``python -m clearsim.bus.security SCENARIO --kafka H:P --prefix P``: as the admin
    (credentials from the environment), create the run's topics and grant the scenario's
    ACL plan, then print the plan (``--dry-run``: only print it). Exit 0 when done, 2 on
    bad input, 3 when the cluster cannot be reached or refuses."""
    import argparse
    import sys
    from pathlib import Path

    from clearsim.bus.base import BusError
    from clearsim.sim.claims import load_claims
    from clearsim.sim.scenario import load_scenario

    p = argparse.ArgumentParser(prog="python -m clearsim.bus.security",
                                description="Create a scenario's topics and its ACL plan on "
                                            "a Kafka cluster, as the admin (credentials from "
                                            f"{ENV_USER} / {ENV_PASSWORD}).")
    p.add_argument("scenario", type=Path)
    p.add_argument("--kafka", default=os.environ.get("CLEARSIM_KAFKA"), metavar="HOST:PORT[,...]")
    p.add_argument("--prefix", default=os.environ.get("CLEARSIM_PREFIX", "clearsim"))
    p.add_argument("--partitions", type=int, default=int(os.environ.get("CLEARSIM_PARTITIONS")
                                                         or 3))
    p.add_argument("--claims", type=Path, help="the claims the nodes are given (default: the "
                                               "scenario's)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    args = p.parse_args(argv)
    try:
        if not args.kafka and not args.dry_run:
            raise ClearsimError(ErrorCode.INVALID_INPUT, "the bootstrap servers of the cluster "
                                "are needed: --kafka HOST:PORT or CLEARSIM_KAFKA", "--kafka")
        if args.partitions < 1:
            raise ClearsimError(ErrorCode.INVALID_INPUT, f"--partitions {args.partitions}: "
                                "must be at least 1", "--partitions")
        scenario = load_scenario(args.scenario)
        path = args.claims or scenario.sim.claims
        the_plan = plan_for(scenario, None if path is None else load_claims(path), args.prefix)
        if args.dry_run:
            for grant in sorted(the_plan.grants):
                print(grant)
            return 0
        admin = credentials_from_env()
        if admin is None:
            raise ClearsimError(ErrorCode.INVALID_INPUT, f"the admin's credentials are "
                                f"needed: {ENV_USER} and {ENV_PASSWORD}", ENV_USER)
        from clearsim.bus.kafka import KafkaBus, apply_plan
        bus = KafkaBus(args.kafka, client_id="clearsim-acls", credentials=admin)
        try:
            apply_plan(bus, the_plan, args.partitions)
        finally:
            bus.close()
    except ClearsimError as exc:
        print(f"clearsim acls: {exc}", file=sys.stderr)
        return 2
    except BusError as exc:
        print(f"clearsim acls: {ErrorCode.BROKER_UNAVAILABLE.value}: {exc}", file=sys.stderr)
        return 3
    for grant in sorted(the_plan.grants):
        print(grant)
    print(f"{len(the_plan.topics)} topics and {len(the_plan.grants)} ACLs for "
          f"{len(the_plan.users())} principals on prefix {args.prefix}")
    return 0


if __name__ == "__main__":
    # Run the module's own copy (python -m loads this file a second time as __main__): the
    # plan's classes must be the ones clearsim.bus.kafka compares them with.
    from clearsim.bus import security

    raise SystemExit(security.main())
