"""SQLAlchemy 2 tables of the guide base.

References that matter for integrity (department, material, bundle member, service point
item) are relational; value objects that are always read whole (time limit, fee,
channels, provenance …) are JSON columns, which both SQLite and PostgreSQL store.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, list[Any]: JSON}


class DepartmentRow(Base):
    __tablename__ = "kb_departments"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    short: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(40))
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class MaterialRow(Base):
    __tablename__ = "kb_materials"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    how_to_get: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)


class EntryRow(Base):
    """A service item (kind='item') or a 一件事 bundle (kind='bundle')."""

    __tablename__ = "kb_entries"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), index=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    code: Mapped[str | None] = mapped_column(String(80))
    item_type: Mapped[str | None] = mapped_column(String(20))
    department_id: Mapped[str] = mapped_column(ForeignKey("kb_departments.id"), index=True)
    summary: Mapped[str] = mapped_column(Text)
    aliases: Mapped[list[Any]] = mapped_column(JSON)
    audience: Mapped[list[Any]] = mapped_column(JSON)
    conditions: Mapped[list[Any]] = mapped_column(JSON)
    time_limit: Mapped[dict[str, Any]] = mapped_column(JSON)
    fee: Mapped[dict[str, Any]] = mapped_column(JSON)
    channels: Mapped[list[Any]] = mapped_column(JSON)
    where: Mapped[dict[str, Any]] = mapped_column(JSON)
    visits: Mapped[int] = mapped_column(Integer)
    phone: Mapped[str | None] = mapped_column(String(40))
    high_frequency: Mapped[bool] = mapped_column(Boolean, default=False)
    result: Mapped[str | None] = mapped_column(String(120))
    flags: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    legal_basis: Mapped[list[Any]] = mapped_column(JSON)
    faq: Mapped[list[Any]] = mapped_column(JSON)
    reductions: Mapped[list[Any]] = mapped_column(JSON)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)
    confidence: Mapped[str] = mapped_column(String(20), index=True)
    # daoban-guide/2 (revision 0002): practical answers, yearly windows, numeric conditions.
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    windows: Mapped[list[Any]] = mapped_column(JSON, default=list)
    eligibility: Mapped[list[Any]] = mapped_column(JSON, default=list)
    popularity: Mapped[int] = mapped_column(Integer, default=0)

    materials: Mapped[list[ItemMaterialRow]] = relationship(
        order_by="ItemMaterialRow.position", cascade="all, delete-orphan"
    )
    situations: Mapped[list[SituationRow]] = relationship(
        order_by="SituationRow.position", cascade="all, delete-orphan"
    )
    members: Mapped[list[BundleMemberRow]] = relationship(
        order_by="BundleMemberRow.position",
        cascade="all, delete-orphan",
        foreign_keys="BundleMemberRow.bundle_id",
    )


class SituationRow(Base):
    """办事情形 of an item: a question whose answer changes the material list."""

    __tablename__ = "kb_situations"
    entry_id: Mapped[str] = mapped_column(
        ForeignKey("kb_entries.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(Text)
    options: Mapped[list[Any]] = mapped_column(JSON)


class ItemMaterialRow(Base):
    __tablename__ = "kb_item_materials"
    entry_id: Mapped[str] = mapped_column(
        ForeignKey("kb_entries.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    material_id: Mapped[str] = mapped_column(ForeignKey("kb_materials.id"), index=True)
    copies: Mapped[int] = mapped_column(Integer)
    form: Mapped[str] = mapped_column(String(20))
    medium: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(20))
    necessity: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    when: Mapped[dict[str, Any]] = mapped_column(JSON)


class BundleMemberRow(Base):
    __tablename__ = "kb_bundle_members"
    bundle_id: Mapped[str] = mapped_column(
        ForeignKey("kb_entries.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("kb_entries.id"), index=True)


class ServicePointRow(Base):
    __tablename__ = "kb_service_points"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    address: Mapped[str] = mapped_column(Text)
    district: Mapped[str] = mapped_column(String(120))
    street: Mapped[str | None] = mapped_column(String(120))
    hours: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(40))
    lat: Mapped[float | None] = mapped_column(Float)
    lng: Mapped[float | None] = mapped_column(Float)
    point_type: Mapped[str] = mapped_column(String(120), index=True)
    windows: Mapped[list[Any]] = mapped_column(JSON)
    placeholder: Mapped[bool] = mapped_column(Boolean)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)
    items: Mapped[list[ServicePointItemRow]] = relationship(
        order_by="ServicePointItemRow.position", cascade="all, delete-orphan"
    )


class ServicePointItemRow(Base):
    __tablename__ = "kb_service_point_items"
    point_id: Mapped[str] = mapped_column(
        ForeignKey("kb_service_points.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("kb_entries.id"), index=True)


class MetaRow(Base):
    """Key/value facts about the stored guide base (e.g. its content hash)."""

    __tablename__ = "kb_meta"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
