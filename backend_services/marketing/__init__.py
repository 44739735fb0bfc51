"""The marketing service: campaigns, leads, segments and Slack announcements."""
