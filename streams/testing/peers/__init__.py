"""Real local peers for tests: HTTP servers on 127.0.0.1 that speak the peers' APIs
(:mod:`~streams.testing.peers.pagerduty`, :mod:`~streams.testing.peers.webhook`) and the real
Alertmanager binary (:mod:`~streams.testing.peers.alertmanager`). The connectors are tested
against them with their real client code, never against mocks."""
