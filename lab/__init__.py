"""Mininet labs: start OVS, the controller and a topology, run a scenario, tear it all down."""
