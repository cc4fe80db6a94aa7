"""The OpenFlow pipeline in one place: tables, priorities and cookie spaces.

Every flow shadownet installs lives in one of three tables, and a flow's
priority says which concern wins where matches overlap. Modules that install
flows take these numbers from here, so a new feature (the address registry,
the twin) can see at a glance where its flows fit; ``docs/pipeline.md`` draws
the same table with each flow's match and owner.

Table 0 ``FROM_CONTAINER``: what a container sends (mirror copies and the
read-only guard, switch-probe punts, elephant shunts), then table 1.
Table 1 ``TO_CONTAINER``: what a container receives (mirror copies, shunts)
and service steering (VIP rewrites, VIP punts), then table 2.
Table 2 ``FORWARD``: whole-path forwarding, fast-failover and bypass groups.
"""

from __future__ import annotations

# --- tables ----------------------------------------------------------------------------
FROM_CONTAINER_TABLE = 0
TO_CONTAINER_TABLE = 1
FORWARD_TABLE = 2
STEER_TABLE = TO_CONTAINER_TABLE  # service steering shares table 1 with inbound copies

# --- priorities (higher wins where matches overlap) --------------------------------------
TABLE_MISS_PRIORITY = 0  # each table's last resort: next table, or the controller in table 2
IPV6_MULTICAST_DROP_PRIORITY = 1  # table 2: IPv6 neighbour chatter stays off the controller
FORWARD_PRIORITY = 100  # host paths (forwarding.priority); +1 with an in_port (crankback)
MIRROR_PRIORITY = 500  # copies to a mirror port (tables 0 and 1)
PUNT_PRIORITY = 550  # new flows and ARP for a VIP, to the controller (table 1)
# Shunts (tables 0 and 1) and steering rules (table 1) share 600: a shunt matches a
# container's own 5-tuple, a steering rule a VIP's, so no packet matches both.
SHUNT_PRIORITY = MIRROR_PRIORITY + 100  # a shunted connection: forwarded, not copied
STEER_PRIORITY = 600  # VIP rewrites: above copies and punts, below the read-only guard
READ_ONLY_PRIORITY = 1000  # drop everything a mirror port sends (table 0)
PROBE_PRIORITY = 65000  # switch probes back to the controller (table 0)
# os-ken's topology app punts LLDP at 0xFFFF (table 0): above everything here.

# --- group id ranges (one group type per range, so an id is never reused across types) --
MIRROR_GROUP_BASE = 0x10000  # mirror sampling select groups: 0x10000..0x7fffffff
FF_GROUP_BASE = 0x80000000  # fast-failover groups: 0x80000000..0x8fffffff
BYPASS_GROUP_BASE = 0x90000000  # bypass select groups: 0x90000000..0x9fffffff

# --- cookies ---------------------------------------------------------------------------
COOKIE_PREFIX = 0x5348 << 48  # "SH": every flow in the signature table
COOKIE_MASK = 0xFFFF << 48
PROBE_COOKIE = 0x5350 << 48  # "SP": the switch-probe punt (not in the table, not reconciled)
