"""Plain service functions the tasks call: each takes a session and ids, and returns values."""
