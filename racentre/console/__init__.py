"""The officers' web console (server-rendered Jinja2 pages under /console) and its resumable jobs."""
