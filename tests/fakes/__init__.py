"""Local stand-ins for the model services, speaking their real protocols on loopback."""
