"""The algorithm: hyperparameters, networks, losses, the one update step, the agent, and an
independent plain reference the tests compare against."""
