"""Services behind virtual IPs: shadow table, node health, redirection and VIP steering.

A *service* is a virtual IP and port that clients talk to, served by one node
at a time (the primary) with standby nodes ready to take over. The modules
here are plain decision code, as in the rest of the controller: they turn
observations (probe results, predictive-engine probabilities, flow counters)
into decisions and OpenFlow messages built with ``datapath=None``. The os-ken
app binds and sends them; unit tests inspect them.

- :mod:`controller.services.service`: the ``services:`` declarations and their validation;
- :mod:`controller.services.health`: a health score per node from probes and the
  predictive engine;
- :mod:`controller.services.shadow_table`: the Shadow Table (ShT), ranked shadow nodes
  per flow, parallel to the signature table;
- :mod:`controller.services.redirection`: when to switch a service to a shadow node,
  with hysteresis, cool-down, draining and verification;
- :mod:`controller.services.steering`: the OpenFlow rules that rewrite VIP traffic to
  the chosen node and back, ARP for VIPs, fast-failover and sampling groups;
- :mod:`controller.services.runtime`: one object tying the above together for the app.
"""
