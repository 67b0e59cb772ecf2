"""A search's space in Hydra's override grammar (``hydra.sweeper.params`` and the command line), as Optuna
distributions, and the overrides a trial's job runs with (hparams_search=optuna; the sweeper is
pixel_spotter/sweeps/optuna_sweeper.py).

- ``choice(a, b, ...)`` (or ``a,b``), also shuffled or sorted: a categorical parameter;
- ``range(start, stop[, step])``: the values Hydra's range gives (stop excluded), as an int parameter with that
  step (a float one for float bounds); ``shuffle(range(...))``: a categorical one over those values;
- ``interval(low, high)``: a float in [low, high], an int when both bounds are written as integers
  (``interval(1, 8)``); ``tag(log, interval(...))``: on a log scale;
- anything else (``model=cnn``): a fixed override every trial runs with.
A later override of a key replaces an earlier one: the command line wins over ``hydra.sweeper.params``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pixel_spotter.errors import UserError

# Hydra turns interval bounds into floats; an interval whose bounds are written as integers is an int one.
_INT_INTERVAL = re.compile(r"interval\(\s*[+-]?\d+\s*,\s*[+-]?\d+\s*\)")
_CATEGORICAL_TYPES = (str, int, float, bool)
FIX = "write it as choice(...), range(...), interval(a,b) or tag(log, interval(a,b))"


def parse_search(params: Mapping | None, arguments: list[str]) -> tuple[dict, dict]:
    """(search space {key: Optuna distribution}, fixed overrides {key: value text}) of a search whose
    config names ``params`` (hydra.sweeper.params) and whose command line is ``arguments``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    lines = [f"{key}={value}" for key, value in (params or {}).items()] + list(arguments)
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except HydraException as err:  # hydra.sweeper.params; the command line Hydra has already parsed
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"hydra.sweeper.params cannot be parsed ({first}); {FIX}") from None
    space, fixed = {}, {}
    for override in parsed:
        key = override.get_key_element()
        space.pop(key, None)  # a later override of a key replaces the earlier one, searched or fixed
        fixed.pop(key, None)
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            fixed[key] = override.get_value_element_as_str()
    return space, fixed


def distribution(override):
    """The Optuna distribution of one sweep override (see the module's list); UserError for another kind."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    value = override.value()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        return _categorical(override)
    if isinstance(value, RangeSweep):
        return _range(override)
    if isinstance(value, IntervalSweep):
        return _interval(override, value)
    raise UserError(f"{override.input_line}: Optuna cannot search this kind of sweep; {FIX}")


def _values(override) -> list:
    from hydra.core.override_parser.types import Transformer

    return list(override.sweep_iterator(transformer=Transformer.encode))  # strings escaped as overrides need


def _categorical(override):
    from optuna.distributions import CategoricalDistribution

    choices = _values(override)
    if not choices or not all(isinstance(c, _CATEGORICAL_TYPES) for c in choices):
        raise UserError(f"{override.input_line}: a searched choice needs at least one value, each a number, a "
                        "string or a boolean; list the values as choice(a, b, ...)")
    return CategoricalDistribution(choices)


def _range(override):
    from optuna.distributions import FloatDistribution, IntDistribution

    values, sweep = _values(override), override.value()
    if not values:
        raise UserError(f"{override.input_line}: the range holds no value; give range(start, stop, step) with "
                        "stop beyond start in the step's direction")
    low, high, step = min(values), max(values), abs(sweep.step)
    if all(isinstance(v, int) for v in values) and isinstance(sweep.step, int):
        return IntDistribution(low, high, step=step)
    return FloatDistribution(float(low), float(high), step=float(step))


def _interval(override, sweep):
    from optuna.distributions import FloatDistribution, IntDistribution

    low, high, log = sweep.start, sweep.end, "log" in sweep.tags
    if low is None or high is None or low > high or (log and low <= 0):
        raise UserError(f"{override.input_line}: an interval needs low <= high (and low > 0 on a log scale); "
                        "give interval(low, high)")
    if _INT_INTERVAL.search(override.input_line):
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(float(low), float(high), log=log)


def override_text(key: str, value) -> str:
    """``key=value`` as an override a job parses back to ``value`` (null, true and false in Hydra's spelling);
    a deletion without a value (``~logger``) stays one."""
    if key.startswith("~") and value in (None, "null"):
        return key
    if value is None:
        return f"{key}=null"
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    return f"{key}={value}"


def job_overrides(params: Mapping, fixed: Mapping) -> list[str]:
    """A trial's job overrides: its sampled values, then the search's fixed overrides."""
    return [override_text(key, value) for key, value in [*params.items(), *fixed.items()]]
