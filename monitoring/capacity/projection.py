"""Growth projection: least squares on daily points, linear or exponential, with a prediction interval.

Time ``t`` is in days relative to the report (0 is now, history is negative). Two models are fitted by
ordinary least squares:

* linear: ``y = a + b·t``;
* exponential: ``ln y = a + b·t`` (only when every point is positive), i.e. a constant daily growth rate.

Both have two parameters, so they are compared directly by their residual sum of squares in the units of
``y``. Over a few weeks the two are often indistinguishable; the exponential one is chosen only when it
fits clearly better (:data:`EXPONENTIAL_MARGIN`), since it compounds any noise in its rate over a year.

The band is the 95 % prediction interval of the chosen model (Student's t with n - 2 degrees of freedom),
``y(t) +/- t95 * s * sqrt(1 + 1/n + (t - t_mean)^2 / Sxx)``, computed in log space for the exponential model
(so its band is multiplicative). It widens with the distance from the data; it assumes the trend goes on
and says nothing about a change of trend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

Model = Literal["linear", "exponential"]

# The exponential model must leave at most this fraction of the linear model's squared error.
EXPONENTIAL_MARGIN = 0.95
MIN_POINTS = 3
_MAX_EXPONENT = 700.0  # exp() of more overflows a float

# Two-sided 95 % quantiles of Student's t, by degrees of freedom 1..30.
_T_975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t_quantile_975(df: int) -> float:
    if df < 1:
        raise ValueError("no degrees of freedom")
    if df <= len(_T_975):
        return _T_975[df - 1]
    return 1.96 + 2.37 / df  # the first Cornish-Fisher term: within 0.002 beyond 30


@dataclass(frozen=True)
class Prediction:
    value: float
    low: float
    high: float

    def clamped(self, lower: float | None, upper: float | None) -> Prediction:
        def clamp(x: float) -> float:
            if lower is not None:
                x = max(lower, x)
            if upper is not None:
                x = min(upper, x)
            return x

        return Prediction(clamp(self.value), clamp(self.low), clamp(self.high))


@dataclass(frozen=True)
class Fit:
    model: Model
    intercept: float  # at t = 0, in y (linear) or ln y (exponential)
    slope: float  # per day, likewise
    residual_se: float  # likewise
    n: int
    t_mean: float
    sxx: float
    sse: float  # residual sum of squares in the units of y: how the model was chosen
    r_squared: float

    @property
    def t_crit(self) -> float:
        return t_quantile_975(self.n - 2)

    def _centre_and_half_width(self, t: float) -> tuple[float, float]:
        centre = self.intercept + self.slope * t
        spread = math.sqrt(1 + 1 / self.n + (t - self.t_mean) ** 2 / self.sxx) if self.sxx else 1.0
        return centre, self.t_crit * self.residual_se * spread

    def predict(self, t: float) -> Prediction:
        centre, half = self._centre_and_half_width(t)
        if self.model == "linear":
            return Prediction(centre, centre - half, centre + half)
        return Prediction(_exp(centre), _exp(centre - half), _exp(centre + half))

    def crossing_day(self, threshold: float, higher_is_worse: bool = True) -> float | None:
        """The ``t`` at which the fitted curve reaches ``threshold`` moving the bad way; None if it never
        does (it moves the other way or stays flat). May be negative: the curve is past it already."""
        rising = self.slope > 0
        if self.slope == 0 or rising != higher_is_worse:
            return None
        if self.model == "linear":
            return (threshold - self.intercept) / self.slope
        if threshold <= 0:
            return None
        return (math.log(threshold) - self.intercept) / self.slope

    def band_crossing_day(
        self, threshold: float, higher_is_worse: bool, edge: Literal["early", "late"], horizon: int
    ) -> float | None:
        """When, within 0..horizon days, the band's early edge (its bad side) or its late edge first
        reaches ``threshold``; None if it doesn't. Found day by day, then to the hour by bisection."""

        def reached(t: float) -> bool:
            p = self.predict(t)
            bad, good = (p.high, p.low) if higher_is_worse else (p.low, p.high)
            value = bad if edge == "early" else good
            return value >= threshold if higher_is_worse else value <= threshold

        if reached(0):
            return 0.0
        for day in range(1, horizon + 1):
            if reached(day):
                low, high = day - 1.0, float(day)
                while high - low > 1 / 24:
                    middle = (low + high) / 2
                    low, high = (low, middle) if reached(middle) else (middle, high)
                return high
        return None

    @property
    def daily_growth(self) -> float:
        """Units per day (linear) or the fractional growth per day (exponential)."""
        return self.slope if self.model == "linear" else math.expm1(self.slope)

    def describe(self, unit: str = "") -> str:
        if self.model == "linear":
            return f"linear, {self.slope:+.3g}{unit}/day, R² {self.r_squared:.2f}"
        text = f"exponential, {math.expm1(self.slope) * 100:+.2f}%/day"
        if self.slope > 0:
            text += f" (doubling in {math.log(2) / self.slope:.0f} days)"
        return f"{text}, R² {self.r_squared:.2f}"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Fit:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__})


def _exp(x: float) -> float:
    return math.exp(min(x, _MAX_EXPONENT))


def _ols(ts: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float, float]:
    """(intercept, slope, t mean, Sₜₜ) of ordinary least squares."""
    n = len(ts)
    t_mean = sum(ts) / n
    y_mean = sum(ys) / n
    sxx = sum((t - t_mean) ** 2 for t in ts)
    sxy = sum((t - t_mean) * (y - y_mean) for t, y in zip(ts, ys, strict=True))
    slope = sxy / sxx if sxx else 0.0
    return y_mean - slope * t_mean, slope, t_mean, sxx


def _r_squared(ys: Sequence[float], sse: float) -> float:
    mean = sum(ys) / len(ys)
    sst = sum((y - mean) ** 2 for y in ys)
    return 1.0 - sse / sst if sst else 1.0


def fit_linear(points: Sequence[tuple[float, float]]) -> Fit:
    ts = [t for t, _ in points]
    ys = [y for _, y in points]
    a, b, t_mean, sxx = _ols(ts, ys)
    sse = sum((y - (a + b * t)) ** 2 for t, y in points)
    n = len(points)
    return Fit("linear", a, b, math.sqrt(sse / (n - 2)), n, t_mean, sxx, sse, _r_squared(ys, sse))


def fit_exponential(points: Sequence[tuple[float, float]]) -> Fit | None:
    if any(y <= 0 for _, y in points):
        return None
    ts = [t for t, _ in points]
    logs = [math.log(y) for _, y in points]
    a, b, t_mean, sxx = _ols(ts, logs)
    n = len(points)
    log_sse = sum((ly - (a + b * t)) ** 2 for t, ly in zip(ts, logs, strict=True))
    sse = sum((y - _exp(a + b * t)) ** 2 for t, y in points)
    ys = [y for _, y in points]
    return Fit("exponential", a, b, math.sqrt(log_sse / (n - 2)), n, t_mean, sxx, sse, _r_squared(ys, sse))


def fit(points: Sequence[tuple[float, float]]) -> Fit | None:
    """The better of the linear and exponential least-squares fits of ``(t, y)`` points; None with fewer
    than :data:`MIN_POINTS`."""
    if len(points) < MIN_POINTS:
        return None
    linear = fit_linear(points)
    exponential = fit_exponential(points)
    if exponential is not None and exponential.sse < EXPONENTIAL_MARGIN * linear.sse:
        return exponential
    return linear
