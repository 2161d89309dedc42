"""How a target's services come to exist."""
