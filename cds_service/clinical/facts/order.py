"""Order facts: one fact per current order (rules name them ``order.<key>``)."""

from __future__ import annotations

from cds_service.clinical.facts.inputs import OrderInfo
from cds_service.clinical.facts.registry import order_fact


@order_fact("order.ingredient", "string", "the order's ingredient (basis of strength)")
def ingredient(o: OrderInfo) -> str:
    return o.ingredient


@order_fact("order.is_draft", "bool", "the order is being prescribed now")
def is_draft(o: OrderInfo) -> bool:
    return o.is_draft


@order_fact("order.is_opioid", "bool", "the order is an opioid")
def is_opioid(o: OrderInfo) -> bool:
    return o.order.is_opioid


@order_fact("order.is_repeat", "bool", "the order is a repeat (UK Core courseOfTherapyType, EPS intent, basedOn)")
def is_repeat(o: OrderInfo) -> bool:
    return o.repeat


@order_fact("order.is_prn", "bool", "the order is as needed only")
def is_prn(o: OrderInfo) -> bool:
    return o.order.prn and not o.order.regular


@order_fact("order.is_ir_fentanyl", "bool", "immediate-release fentanyl")
def is_ir_fentanyl(o: OrderInfo) -> bool:
    return "immediate-release-fentanyl" in o.classes


@order_fact("order.release", "string", "immediate | modified")
def release(o: OrderInfo) -> str:
    return o.order.product.release if o.order.product else ""


@order_fact("order.route", "string", "route of the product")
def route(o: OrderInfo) -> str:
    return o.order.product.route if o.order.product else ""
