"""The token archive (optional, ``[tsa] archive = true``): one row per issued TimeStampToken."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, LargeBinary, String
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from store.db import Base, transaction
from timestamp.tsa import IssuedToken


class TimestampToken(Base):
    __tablename__ = "tsa_token"

    serial: Mapped[str] = mapped_column(String(40), primary_key=True)      # hex, up to 160 bits
    gen_time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    unit: Mapped[str] = mapped_column(String(64))
    policy: Mapped[str] = mapped_column(String(128))
    imprint_algorithm: Mapped[str] = mapped_column(String(16))
    imprint: Mapped[bytes] = mapped_column(LargeBinary)
    token: Mapped[bytes] = mapped_column(LargeBinary)


def archiver(factory: sessionmaker[Session]):
    """A ``TimeStampAuthority(archive=...)`` callable: one short transaction per token."""
    def archive(issued: IssuedToken) -> None:
        with transaction(factory) as session:
            session.add(TimestampToken(serial=f"{issued.serial:x}", gen_time=issued.gen_time, unit=issued.unit,
                                       policy=issued.policy, imprint_algorithm=issued.imprint_algorithm,
                                       imprint=issued.imprint, token=issued.token))
    return archive


def find(factory: sessionmaker[Session], serial: int) -> TimestampToken | None:
    with factory() as session:
        return session.get(TimestampToken, f"{serial:x}")
