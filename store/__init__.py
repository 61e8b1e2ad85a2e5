"""Persistence shared by every package: SQLAlchemy engines and sessions for SQLite and PostgreSQL
(``store.db``: ``Base``, ``transaction``, ``reading``, ``after_commit``, ``named_lock``) and the
generation rows through which per-process caches follow changes made by other nodes (``store.generation``).
Below every domain package and above ``pkicore``, which stays free of databases."""
