"""Supply-demand balance on the planning floor: pure functions, frames in and frames out.

Supply inputs (capacity, routing, inventory) are checked where they enter
(:mod:`~sopforecast.supply.inputs`); the capacity check loads resources from the final plan
(:mod:`~sopforecast.supply.capacity`). No module here reads MLflow or writes anything; the
readers in :mod:`~sopforecast.supply.inputs` are the only ones that read files.
"""

from .capacity import capacity_exceptions, capacity_load, resource_load, utilisation
from .constrained import ALLOCATION_RULE, ConstrainedPlan, constrained_plan, greedy_plan
from .inputs import (
    CAPACITY_COLUMNS,
    INVENTORY_COLUMNS,
    ROUTING_COLUMNS,
    UNITS,
    validate_capacity,
    validate_inventory,
    validate_routing,
)
from .inventory import BELOW_SAFETY, STOCKOUT, inventory_exceptions, project_inventory
from .safety import REVIEW_MONTHS, lead_time_errors, safety_stock

__all__ = [
    # inputs
    "CAPACITY_COLUMNS",
    "ROUTING_COLUMNS",
    "INVENTORY_COLUMNS",
    "UNITS",
    "validate_capacity",
    "validate_routing",
    "validate_inventory",
    # capacity
    "capacity_load",
    "resource_load",
    "utilisation",
    "capacity_exceptions",
    # constrained plan
    "ALLOCATION_RULE",
    "ConstrainedPlan",
    "constrained_plan",
    "greedy_plan",
    # safety stock and projected inventory
    "REVIEW_MONTHS",
    "lead_time_errors",
    "safety_stock",
    "STOCKOUT",
    "BELOW_SAFETY",
    "project_inventory",
    "inventory_exceptions",
]
