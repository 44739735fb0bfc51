"""The front door: channels (web, rest, slack), bot personas, turn pipeline, reply router."""
