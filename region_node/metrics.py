"""A region's metrics, read from its own tables when scraped: its claims in both roles and
its monthly clearing as it sees it."""

from __future__ import annotations

from sqlalchemy import func, literal, select, union_all

from clearsim.messages import region_node
from clearsim.metrics import NodeCollector, gauge, yuan
from region_node.tables import clearings, insured_claims, treated_claims


def claim_states(conn):
    """Claims treated in its hospitals (role ``treating``) and of its insured (``insuring``)
    by state; a claim of its own insured in its own hospital counts in both."""
    def by_state(table, role: str):
        return select(literal(role).label("role"), table.c.state, func.count()).group_by(
            table.c.state)
    both = union_all(by_state(treated_claims, "treating"), by_state(insured_claims, "insuring"))
    return conn.execute(select(both.subquery()).order_by("role", "state")).all()


FLOWS = ("payable", "receivable", "disbursed", "paid_to_hospitals")


def clearing_amounts(region: str):
    def read(conn):
        """Its figures in each month's clearing window (yuan): what the hub's notice says
        it owes and is owed, what the hub disbursed to it and what it paid its hospitals
        (a flow not there yet is left out)."""
        rows = conn.execute(select(clearings.c.month, *(clearings.c[flow] for flow in FLOWS))
                            .order_by(clearings.c.month))
        return [(region, month, flow, yuan(fen)) for month, *amounts in rows
                for flow, fen in zip(FLOWS, amounts) if fen is not None]
    return read


def families(region: str):
    return (
        gauge("clearsim_claims", "Claims held, by the role the node plays in them and state",
              ("role", "state"), claim_states),
        gauge("clearsim_clearing_yuan",
              "Monthly clearing by region and month (YYYYMM): what the region owes "
              "(payable), is owed (receivable), was disbursed and paid its hospitals",
              ("region", "month", "flow"), clearing_amounts(region)),
    )


def collector(node) -> NodeCollector:
    """A region node's families (and every node's), for ``registry.register``."""
    return NodeCollector(node, families(node.node_id.removeprefix(region_node(""))))
