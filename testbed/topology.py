"""Which nodes a scenario needs, and what each of them knows at start.

From a scenario and its claims: one hub, one region node per region, one hospital node per
region that has hospitals. Reference data only (policies, catalogs, hospitals, the insured
of each region); everything else travels as messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from clearsim.messages import HUB, hospitals_node, region_node
from hospital_node.handlers import HospitalsConfig
from hub.handlers import HubConfig
from region_node.handlers import RegionConfig


@dataclass(frozen=True)
class Topology:
    hub: HubConfig
    regions: dict[str, RegionConfig]
    hospitals: dict[str, HospitalsConfig]

    def node_ids(self) -> list[str]:
        return ([HUB] + [region_node(r) for r in self.regions]
                + [hospitals_node(r) for r in self.hospitals])


def build_topology(scenario, claims) -> Topology:
    """``claims``: parsed claims; their persons become the insured of their regions."""
    codes = tuple(sorted(scenario.regions))
    insured: dict[str, dict[str, str]] = {code: {} for code in codes}
    for claim in claims:
        person = claim.person
        if person.insuring_region in insured:
            insured[person.insuring_region].setdefault(person.id, person.insurance.insutype)
    catalogs = {code: scenario.regions[code].catalog for code in codes}
    hospitals: dict[str, dict[str, int]] = {}
    for hospital in scenario.hospitals.values():
        hospitals.setdefault(hospital.region, {})[hospital.id] = hospital.level
    return Topology(
        hub=HubConfig(regions=codes, calendar=scenario.sim.calendar, clearing=scenario.clearing,
                      reconciliation=scenario.reconciliation),
        regions={code: RegionConfig(region=code, regions=codes,
                                    policy=scenario.regions[code].policy,
                                    catalog=scenario.regions[code].catalog,
                                    hospitals=hospitals.get(code, {}),
                                    persons=insured[code],
                                    calendar=scenario.sim.calendar,
                                    clearing=scenario.clearing, audit=scenario.audit,
                                    catalogs=catalogs)
                 for code in codes},
        hospitals={code: HospitalsConfig(region=code, hospitals=levels)
                   for code, levels in sorted(hospitals.items())},
    )
