"""The SQL family: what SQLite (and the PostgreSQL backend to come) share.

``migrate`` applies a dialect's versioned migration files.
"""
