"""ra: the registration authority - subjects, requests, vetting, four-eyes approval."""
