"""What a court, or anyone, can check without our server: the standalone bundle verifier."""
