"""Portal pages of the federation: jobs (submit, follow, cancel) and centres (overview, operators' actions)."""
