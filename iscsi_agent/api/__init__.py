"""The Unix-socket HTTP/JSON API of shared/design.md and its client (used by iscsi-agentctl)."""
