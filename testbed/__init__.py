"""The driver above the nodes: it builds a scenario's topology, wires the nodes, plays the
outside world (patients, the calendar driving reconciliation and clearing), and reports.

The core package ``clearsim`` never imports this package nor the node packages; this one
imports both, and asks each node for what it needs through the node's ``queries`` module.
"""
