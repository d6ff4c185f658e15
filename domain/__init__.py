"""The core of InsPilot: what a stimulus, a session and a generation are. Standard library only."""
