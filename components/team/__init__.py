"""Team components: a team's namespace and its egress paths, and the team stack role."""
