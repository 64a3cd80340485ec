from tests.store.dbkit import db, db_target

__all__ = ["db", "db_target"]
