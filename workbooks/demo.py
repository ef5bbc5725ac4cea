"""Demo and scale data for the gallery: ``manage.py seed_demo``.

Three parts:

* **Vocabulary and text.** Titles, descriptions, tags and bios are built from a combinatorial BI vocabulary
  (domains such as SaaS revenue, churn or supply chain, each with its own metrics, dimensions, sources,
  teams, goals and method notes, plus chart types, time grains and adjectives). A description stays within
  its title's domain, so a search for "churn" finds churn workbooks whose text talks about churn.
* **The demo** (:func:`seed_gallery`): about 30 people (``accounts.demo.seed_people``), 200 workbooks, tags,
  favorites, follows and 30 days of statistics. Idempotent: a workbook is identified by its deterministic
  embed link, so a rerun creates nothing new (a rerun on a later day only tops up the statistics of the days
  since, so trending never goes stale).
* **The bulk loader** (:class:`BulkLoader`): adds N workbooks, M users, favorites, follows, tags and
  statistics on top of what exists. Ids are assigned here (max(id) + 1), so related rows are written without
  reading anything back; everything is planned in memory first (favorites before the workbooks, so
  ``favorite_count`` and ``view_count`` go into the workbook rows as they are written) and then streamed with
  ``COPY`` on PostgreSQL or batched ``executemany`` elsewhere. On PostgreSQL the whole load is one
  transaction; for large loads the secondary indexes, unique and foreign-key constraints of the tables
  being filled are dropped first and recreated (same definitions) before commit, which is several times
  faster than maintaining them row by row and leaves nothing half-done if the load fails.

Statistics at scale: every favoritable workbook gets a daily view *rate* that falls with its popularity
rank; a day gets a row only if it had views (or favorites), so popular workbooks have all 30 days and the
long tail a day or two. That keeps the row count near 3 per workbook at 1,000,000 workbooks while
``view_count`` is still exactly the sum of the workbook's rows. ``WorkbookDailyStat.favorites`` counts the
generated favorites made on that day, and ``favorite_count`` the generated favorite rows.

Everything random comes from ``random.Random(seed)``, so a run is reproducible for a given seed, database
state and day.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
import time
import unicodedata
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, models, transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.text import slugify

from accounts.demo import DEMO_STAFF_USERNAME, ROLES, TOPICS, demo_people, seed_people
from accounts.models import Follow, User, ci
from sigma_playground.progress import Progress
from workbooks import demo_images, maintenance, services, thumbnails
from workbooks.models import (
    Favorite,
    Tag,
    Visibility,
    Workbook,
    WorkbookDailyStat,
    WorkbookTag,
    new_share_token,
)
from workbooks.trending import score

# =========================================================================================================
# Vocabulary
# =========================================================================================================


@dataclass(frozen=True)
class Domain:
    """One business area. Everything a workbook says comes from its domain plus the shared vocabulary."""

    name: str
    tags: tuple[str, ...]
    metrics: tuple[str, ...]
    dimensions: tuple[str, ...]
    sources: tuple[str, ...]
    teams: tuple[str, ...]
    goals: tuple[str, ...]
    notes: tuple[str, ...]


DOMAINS: tuple[Domain, ...] = (
    Domain(
        "SaaS Revenue",
        ("saas", "revenue", "finance", "subscriptions", "kpi"),
        ("ARR", "MRR", "net new ARR", "expansion MRR", "contraction MRR", "average contract value",
         "net revenue retention", "gross revenue retention"),
        ("plan tier", "customer segment", "region", "billing frequency", "sales channel", "industry"),
        ("billing_invoices", "stripe_subscriptions", "salesforce_opportunities", "chargebee_events"),
        ("Finance", "RevOps", "Executive", "Board"),
        ("explain every movement in recurring revenue", "spot expansion opportunities before renewal",
         "reconcile bookings with billed revenue", "prepare the monthly investor update"),
        ("ARR is the annualised value of active subscriptions on the last day of the period.",
         "Upgrades and downgrades inside a month are netted before they count as expansion or contraction.",
         "One-off services revenue is excluded so the recurring picture stays clean.",
         "Multi-currency contracts are converted at the plan rate, not the daily rate."),
    ),
    Domain(
        "Customer Churn",
        ("churn", "retention", "customer-success", "saas"),
        ("logo churn", "churn rate", "at-risk accounts", "renewal rate", "health score", "downgrade rate",
         "churned revenue"),
        ("cohort month", "customer success manager", "product line", "contract length", "NPS band",
         "company size"),
        ("crm_accounts", "renewals", "support_tickets", "product_usage_daily", "nps_responses"),
        ("Customer Success", "Account Management", "Executive", "Product"),
        ("catch at-risk accounts a quarter before renewal", "understand why customers leave",
         "prioritise the renewal calendar", "measure whether onboarding reduces early churn"),
        ("An account counts as churned on the day its last paid subscription ends.",
         "The health score blends usage, support volume and survey answers; weights are in the notes tab.",
         "Churn reasons come from the cancellation form and are grouped into eight categories.",
         "Paused accounts are not counted as churn until the pause is cancelled."),
    ),
    Domain(
        "Cohort Retention",
        ("retention", "cohorts", "product-analytics", "growth"),
        ("day-30 retention", "weekly active retention", "repeat purchase rate", "cohort LTV",
         "reactivation rate", "survival curve"),
        ("signup cohort", "acquisition channel", "first product", "country", "device type", "pricing plan"),
        ("events", "signups", "orders", "sessions", "user_profiles"),
        ("Growth", "Product", "Lifecycle Marketing", "Data Science"),
        ("see which acquisition channels bring customers who stay", "compare retention before and after a launch",
         "size the payback period of each cohort", "find the moment users drop off"),
        ("Cohorts are defined by the week of the first meaningful action, not the signup date.",
         "Retention is unbounded: a user counts if active in the period or any later one.",
         "Bots and internal accounts are filtered out with the shared exclusion list.",
         "Small cohorts under 50 users are greyed out to avoid reading noise."),
    ),
    Domain(
        "Inventory Health",
        ("inventory", "supply-chain", "operations", "retail"),
        ("stock on hand", "days of supply", "inventory turns", "stockout rate", "aged inventory",
         "shrinkage", "open purchase orders"),
        ("warehouse", "SKU category", "supplier", "region", "season", "brand"),
        ("inventory_snapshots", "purchase_orders", "sales_lines", "warehouse_moves", "sku_master"),
        ("Operations", "Merchandising", "Planning", "Finance"),
        ("keep best sellers in stock without tying up cash", "find slow movers before they need markdowns",
         "plan replenishment for the peak season", "balance stock between warehouses"),
        ("Days of supply use the trailing 28-day sales rate per SKU and location.",
         "Aged inventory buckets start counting on the receipt date, not the order date.",
         "Snapshots are taken at midnight local time for each warehouse.",
         "Consignment stock is shown separately and excluded from turns."),
    ),
    Domain(
        "Marketing Attribution",
        ("marketing", "attribution", "advertising", "growth"),
        ("CAC", "ROAS", "first-touch conversions", "attributed pipeline", "cost per lead", "MQL to SQL rate",
         "blended CPA"),
        ("campaign", "channel", "UTM source", "creative", "audience", "landing page"),
        ("ad_spend_daily", "web_sessions", "hubspot_contacts", "marketo_activities", "google_ads_stats"),
        ("Marketing", "Demand Generation", "Growth", "Executive"),
        ("move budget to the channels that create pipeline", "compare first-touch and multi-touch credit",
         "report return on ad spend to leadership", "stop campaigns that do not convert"),
        ("Multi-touch credit uses a W-shaped model with 30% each on first touch, lead creation and opportunity.",
         "Spend is pulled from the ad platforms daily and converted to USD at the month's average rate.",
         "Direct and unknown traffic is kept as its own channel instead of being redistributed.",
         "The lookback window is 90 days from the opportunity's creation."),
    ),
    Domain(
        "Supply Chain",
        ("supply-chain", "logistics", "operations", "procurement"),
        ("on-time delivery", "lead time", "fill rate", "freight cost per unit", "supplier defect rate",
         "OTIF", "carrier transit time"),
        ("carrier", "lane", "supplier", "distribution center", "shipping mode", "country of origin"),
        ("shipments", "purchase_orders", "carrier_invoices", "receipts", "supplier_scorecards"),
        ("Logistics", "Procurement", "Operations", "Finance"),
        ("hold suppliers and carriers to their commitments", "cut freight cost without hurting delivery",
         "see where lead times are slipping", "prepare the quarterly supplier review"),
        ("OTIF counts an order only when every line arrives complete inside the promised window.",
         "Freight cost is allocated to units by weight, falling back to volume when weight is missing.",
         "Lead time runs from purchase order approval to goods receipt.",
         "Expedited shipments are flagged so their cost does not distort the lane averages."),
    ),
    Domain(
        "HR Headcount",
        ("hr", "people-analytics", "recruiting", "headcount"),
        ("headcount", "attrition", "time to hire", "offer acceptance rate", "span of control",
         "open requisitions", "internal mobility"),
        ("department", "job level", "office location", "manager", "tenure band", "employment type"),
        ("hris_workers", "ats_applications", "job_requisitions", "terminations", "compensation_bands"),
        ("People", "Talent Acquisition", "Finance", "Leadership"),
        ("track hiring against the headcount plan", "understand regretted attrition by team",
         "give managers a live view of their org", "forecast payroll for next year"),
        ("Headcount is measured on the last day of the month and includes contractors in a separate series.",
         "Attrition is annualised from the trailing twelve months of voluntary and involuntary exits.",
         "Personal data is aggregated; groups smaller than five people are suppressed.",
         "Time to hire runs from requisition approval to signed offer."),
    ),
    Domain(
        "Finance Close",
        ("finance", "accounting", "close", "fp-and-a"),
        ("days to close", "journal entries", "reconciliation status", "accruals", "variance to budget",
         "intercompany balances", "manual adjustments"),
        ("entity", "GL account", "cost center", "accounting period", "subsidiary", "preparer"),
        ("general_ledger", "journal_lines", "netsuite_transactions", "reconciliations", "close_tasks"),
        ("Accounting", "Controllership", "FP&A", "CFO"),
        ("shorten the month-end close", "see which reconciliations block sign-off",
         "explain budget variances before the board meeting", "audit manual journal entries"),
        ("Tasks are due relative to workday one of the close calendar.",
         "Intercompany balances are eliminated at the consolidated level only.",
         "Variance is actual minus budget; favourable variances are shown in green for both revenue and cost.",
         "Accruals reverse automatically on the first day of the next period."),
    ),
    Domain(
        "Product Analytics",
        ("product-analytics", "engagement", "experimentation", "funnels"),
        ("daily active users", "DAU/MAU stickiness", "feature adoption", "funnel conversion",
         "session length", "activation rate", "time to value"),
        ("feature", "platform", "pricing plan", "release version", "experiment variant", "user persona"),
        ("events", "feature_flags", "sessions", "experiments", "accounts"),
        ("Product", "Design", "Engineering", "Growth"),
        ("learn which features keep users coming back", "read A/B test results with confidence intervals",
         "find where new users get stuck", "decide what to build next"),
        ("Active means at least one meaningful event, not just a page load.",
         "Experiment results use a two-sided test at 95% confidence with a sequential correction.",
         "Event names follow the object-action convention from the tracking plan.",
         "Activation is reaching three key actions within the first seven days."),
    ),
    Domain(
        "Support SLAs",
        ("support", "sla", "customer-success", "operations"),
        ("first response time", "resolution time", "SLA breach rate", "CSAT", "ticket backlog",
         "tickets per agent", "reopen rate"),
        ("queue", "priority", "support channel", "agent team", "product area", "customer tier"),
        ("zendesk_tickets", "ticket_events", "csat_surveys", "agent_schedules", "intercom_conversations"),
        ("Support", "Customer Success", "Operations", "Product"),
        ("keep every priority inside its SLA", "staff the queues for next week's volume",
         "find the product areas that generate the most tickets", "coach agents with fair comparisons"),
        ("Business hours follow each queue's own calendar and public holidays.",
         "A breach is counted once per ticket, at the first missed target.",
         "CSAT is the share of 4 and 5 ratings among answered surveys.",
         "Merged tickets are attributed to the surviving ticket."),
    ),
    Domain(
        "Sales Pipeline",
        ("sales", "pipeline", "forecasting", "revops"),
        ("pipeline coverage", "win rate", "sales cycle length", "bookings", "stage conversion",
         "forecast accuracy", "average deal size"),
        ("sales rep", "territory", "deal stage", "deal size band", "lead source", "product line"),
        ("salesforce_opportunities", "opportunity_history", "quotas", "activities", "forecast_calls"),
        ("Sales", "RevOps", "Sales Leadership", "Finance"),
        ("run the weekly forecast call from one page", "see whether there is enough pipeline for next quarter",
         "coach reps on stalled deals", "compare forecast calls with what actually closed"),
        ("Coverage is open pipeline due this quarter divided by the remaining quota.",
         "Stage history is rebuilt from field history so slipped deals are visible.",
         "Win rate counts closed-won against all closed opportunities with value above zero.",
         "Renewals are excluded from new-business pipeline."),
    ),
    Domain(
        "E-commerce",
        ("ecommerce", "retail", "conversion", "marketing"),
        ("gross merchandise value", "conversion rate", "average order value", "cart abandonment",
         "return rate", "repeat customer rate", "units per order"),
        ("product category", "traffic source", "device type", "country", "promotion", "fulfilment method"),
        ("orders", "order_lines", "web_sessions", "returns", "shopify_products"),
        ("E-commerce", "Merchandising", "Marketing", "Executive"),
        ("see how promotions change basket size", "find the checkout steps that lose customers",
         "plan the holiday trading calendar", "watch returns by category"),
        ("Revenue is net of discounts and before tax and shipping.",
         "Returns are matched to the original order, so the rate is by order month.",
         "Sessions from internal IP ranges and known crawlers are excluded.",
         "Marketplace orders are included with their own fulfilment method."),
    ),
    Domain(
        "Cloud Cost",
        ("cloud-cost", "finops", "engineering"),
        ("cloud spend", "cost per customer", "reserved instance coverage", "idle resources",
         "warehouse credits", "cost per query", "savings plan utilisation"),
        ("cloud service", "engineering team", "environment", "cloud account", "cost allocation tag",
         "region"),
        ("aws_cur", "gcp_billing_export", "snowflake_metering", "kubernetes_usage", "tag_owners"),
        ("Platform Engineering", "FinOps", "Finance", "Data Platform"),
        ("show every team what its infrastructure costs", "find idle resources to switch off",
         "forecast next quarter's cloud bill", "keep warehouse credits inside budget"),
        ("Untagged spend is allocated by each team's share of tagged spend in the same account.",
         "Amortised cost spreads upfront reservations over their term.",
         "Credits and refunds are shown as a separate line, never netted into usage.",
         "Query cost is estimated from warehouse size and elapsed time."),
    ),
    Domain(
        "FP&A Forecasting",
        ("forecasting", "fp-and-a", "finance", "planning"),
        ("revenue forecast", "operating expenses", "burn rate", "cash runway", "headcount plan",
         "budget variance", "gross margin"),
        ("scenario", "department", "fiscal quarter", "planning driver", "plan version", "business unit"),
        ("budget_versions", "actuals_monthly", "driver_inputs", "headcount_plan", "cash_balances"),
        ("FP&A", "CFO", "Leadership", "Board"),
        ("compare plan scenarios side by side", "roll the forecast forward every month",
         "show the board how long the cash lasts", "let budget owners update their own drivers"),
        ("The base scenario uses the latest signed budget; upside and downside flex three drivers.",
         "Input tables let budget owners change drivers without touching formulas.",
         "Actuals are locked once the period is closed in the ledger.",
         "Runway assumes current burn with planned hires added on their start dates."),
    ),
    Domain(
        "Data Quality",
        ("data-quality", "data-engineering", "observability"),
        ("freshness lag", "null rate", "failed tests", "row count drift", "duplicate keys",
         "pipeline run time", "schema changes"),
        ("dbt model", "source system", "schema", "data owner", "dbt tag", "orchestration job"),
        ("dbt_run_results", "information_schema", "airflow_task_instances", "test_failures", "source_freshness"),
        ("Data Engineering", "Analytics Engineering", "Data Platform", "Governance"),
        ("catch broken pipelines before business users do", "show owners which models fail most",
         "track data SLAs for critical dashboards", "prioritise test coverage"),
        ("Freshness is the age of the newest row against the model's expected update cadence.",
         "Row count drift compares today's load with the median of the previous 14 loads.",
         "Only models tagged critical page the on-call engineer.",
         "Test results are parsed from dbt artifacts after every run."),
    ),
    Domain(
        "Healthcare Operations",
        ("healthcare", "operations", "capacity-planning"),
        ("patient wait time", "bed occupancy", "readmission rate", "no-show rate", "length of stay",
         "discharges before noon"),
        ("facility", "clinical department", "payer", "provider", "diagnosis group", "admission source"),
        ("encounters", "appointments", "bed_census", "claims", "staffing_rosters"),
        ("Operations", "Nursing Leadership", "Quality", "Finance"),
        ("balance bed capacity across facilities", "reduce avoidable readmissions",
         "cut appointment no-shows with reminders", "plan staffing for seasonal peaks"),
        ("All figures are de-identified and aggregated; no row-level patient data leaves the warehouse.",
         "Readmissions count unplanned returns within 30 days of discharge.",
         "Occupancy is measured at the midnight census.",
         "Length of stay excludes observation stays under 24 hours."),
    ),
    Domain(
        "Manufacturing OEE",
        ("manufacturing", "operations", "quality"),
        ("OEE", "scrap rate", "throughput", "downtime minutes", "first pass yield", "changeover time",
         "mean time between failures"),
        ("production line", "shift", "plant", "machine", "product family", "downtime reason"),
        ("machine_events", "production_orders", "quality_inspections", "maintenance_logs", "mes_counts"),
        ("Plant Management", "Quality", "Maintenance", "Operations"),
        ("find the biggest losses on each line", "compare shifts fairly", "plan preventive maintenance",
         "trace quality escapes back to a machine"),
        ("OEE is availability times performance times quality, each measured per shift.",
         "Planned maintenance is excluded from availability losses.",
         "Machine states are sampled every ten seconds from the MES.",
         "Scrap is weighed at the end of each shift and allocated to orders by run time."),
    ),
    Domain(
        "Web Analytics",
        ("web-analytics", "marketing", "seo"),
        ("sessions", "bounce rate", "organic traffic", "page views", "signup conversion", "engaged time",
         "core web vitals"),
        ("landing page", "referrer", "campaign", "country", "device type", "content type"),
        ("ga4_events", "web_sessions", "search_console", "page_metadata", "signups"),
        ("Marketing", "Content", "SEO", "Web Team"),
        ("see which content brings visitors who sign up", "watch organic search after a site migration",
         "find slow pages that lose visitors", "report traffic to the content team weekly"),
        ("Sessions time out after 30 minutes of inactivity, matching the analytics default.",
         "Organic traffic joins Search Console clicks with on-site sessions by landing page.",
         "Consent-mode gaps are modelled, and the modelled share is shown next to every total.",
         "Page groups come from the content team's taxonomy sheet."),
    ),
    Domain(
        "Payments and Fraud",
        ("payments", "fraud", "risk", "fintech"),
        ("authorization rate", "chargeback rate", "fraud losses", "payment volume", "decline rate",
         "dispute win rate", "false positive rate"),
        ("payment processor", "card network", "merchant category", "issuing country", "payment method",
         "risk rule"),
        ("transactions", "authorizations", "chargebacks", "risk_decisions", "disputes"),
        ("Risk", "Payments", "Finance", "Compliance"),
        ("tune fraud rules without blocking good customers", "compare processors on approval rates",
         "keep chargebacks under the network thresholds", "explain losses to compliance"),
        ("Chargeback rate uses the network's definition: disputes this month over transactions last month.",
         "Soft declines that succeed on retry are counted as approved.",
         "Card numbers never reach the warehouse; only BIN and country are kept.",
         "Rule performance is measured on a holdout of transactions that skip the rule."),
    ),
)  # fmt: skip

ARTIFACTS = (
    "Dashboard", "Tracker", "Scorecard", "Report", "Explorer", "Monitor", "Overview", "Deep Dive",
    "Workbook", "Cockpit", "Review", "Analysis", "Playbook", "Command Center", "Health Check", "Snapshot",
    "Model", "Board Pack", "Pulse", "Starter Kit",
)  # fmt: skip
ADJECTIVES = (
    "Executive", "Weekly", "Daily", "Monthly", "Quarterly", "Real-Time", "Self-Serve", "Interactive",
    "Unified", "Global", "Regional", "Operational", "Strategic", "Simple", "Advanced", "Live", "Annual",
    "Rolling", "Team", "Company-Wide",
)  # fmt: skip
GRAINS = ("daily", "weekly", "monthly", "every hour", "every morning", "nightly", "every fifteen minutes")
PERIODS = ("week", "month", "quarter", "fiscal year", "sprint", "season")
CHARTS = (
    "line chart", "stacked bar chart", "waterfall chart", "heat map", "cohort triangle", "pivot table",
    "scatter plot", "funnel chart", "area chart", "row of KPI tiles", "sankey diagram", "box plot",
    "region map", "combo chart", "histogram", "grid of small multiples", "bullet chart", "donut chart",
)  # fmt: skip
WAREHOUSES = ("Snowflake", "BigQuery", "Databricks", "Redshift", "PostgreSQL")
REGIONS = (
    "EMEA", "APAC", "North America", "LATAM", "DACH", "Nordics", "UK and Ireland", "Benelux", "ANZ",
    "Japan", "India", "US West", "US East", "France", "Iberia",
)  # fmt: skip
CONTROLS = (
    "date range", "region", "segment", "owner", "currency", "fiscal period", "comparison period",
    "granularity", "scenario", "team",
)  # fmt: skip
CURRENCIES = ("USD", "EUR", "GBP", "the reporting currency", "constant currency")
TITLE_KEEP = frozenset({"dbt"})  # brand names written in lower case
TITLE_SMALL_WORDS = frozenset(
    {"a", "an", "and", "as", "at", "by", "for", "in", "of", "on", "or", "the", "to", "vs."}
)

# Tags that do not belong to one domain: what kind of workbook it is rather than what it is about.
GENERIC_TAGS = (
    "dashboard", "executive", "template", "board-reporting", "kpi", "time-series", "benchmarking",
    "self-serve", "sql", "python", "pivot-tables", "maps", "what-if", "alerts", "input-tables", "dbt",
)  # fmt: skip
# A readable, lower-case palette; each tag gets one deterministically from its slug.
TAG_PALETTE = (
    "#2456d3", "#1a7f37", "#b42318", "#9a6700", "#8250df", "#0f766e", "#c2410c", "#be185d",
    "#4d7c0f", "#0369a1", "#6d28d9", "#475569", "#a16207", "#0e7490", "#15803d", "#9f1239",
)  # fmt: skip

MORE_FIRST_NAMES = (
    "Aiko", "Aleksander", "Alma", "Anders", "Anika", "Arjun", "Astrid", "Beatriz", "Camille", "Caio",
    "Daniela", "Diego", "Elif", "Emeka", "Fatima", "Felix", "Giulia", "Hugo", "Ingrid", "Isaac", "Jana",
    "Jamal", "Kaito", "Keira", "Lars", "Leila", "Luca", "Maja", "Malik", "Marta", "Mei", "Nico", "Nora",
    "Olu", "Paula", "Pedro", "Rania", "Ravi", "Sana", "Santiago", "Sofia", "Tariq", "Teodor", "Valentina",
    "Wanjiru", "Yara", "Yuki", "Zara", "Emil", "Freya",
)  # fmt: skip
MORE_LAST_NAMES = (
    "Andersen", "Banerjee", "Costa", "Dahl", "Eriksen", "Fernandes", "Gupta", "Hansen", "Ibrahim",
    "Jensen", "Kim", "Laurent", "Mendes", "Nakamura", "Oliveira", "Park", "Quinn", "Reyes", "Schmidt",
    "Takahashi", "Umar", "Varga", "Wagner", "Yilmaz", "Zielinski", "Adeyemi", "Brennan", "Chowdhury",
    "Dimitrov", "Esposito", "Fischer", "Horvath", "Ivanova", "Jovanovic", "Kowalski", "Lopez", "Murphy",
    "Nguyen", "Osei", "Popescu", "Santos", "Tran", "Weber", "Hoffmann", "Mwangi", "Sorensen",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
BIO_EXTRAS = (
    "Sharing what works, and what didn't.",
    "Happy to swap notes on data modelling.",
    "Previously in consulting; now in-house.",
    "Spreadsheet refugee, warehouse convert.",
    "Ask me about window functions.",
    "Building the semantic layer one metric at a time.",
    "Believer in small, well-named tables.",
    "I like charts that answer one question each.",
    "Writing about analytics engineering on weekends.",
    "Organiser of the local data meetup.",
    "",
)


def title_case(text: str) -> str:
    """Title Case that keeps acronyms (ARR, DAU/MAU, OEE) and lower-cases short joining words."""
    words = text.split(" ")
    out = []
    for i, word in enumerate(words):
        keep = word in TITLE_KEEP or any(ch.isupper() or ch.isdigit() for ch in word)  # acronyms, years
        if keep or (i > 0 and word in TITLE_SMALL_WORDS):
            out.append(word)
        else:
            out.append("-".join(part[:1].upper() + part[1:] for part in word.split("-")))
    return " ".join(out)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def tag_colour(slug: str) -> str:
    digest = hashlib.sha256(slug.encode()).digest()
    return TAG_PALETTE[digest[0] % len(TAG_PALETTE)]


def all_tag_slugs() -> list[str]:
    """Every tag the generator uses (about 60): the domains' tags first, then the generic ones."""
    seen: dict[str, None] = {}
    for domain in DOMAINS:
        for slug in domain.tags:
            seen.setdefault(slug, None)
    for slug in GENERIC_TAGS:
        seen.setdefault(slug, None)
    return list(seen)


class TextGenerator:
    """Titles, descriptions, tag sets and bios drawn from the vocabulary with a caller-supplied RNG."""

    def title(self, domain: Domain, rng: random.Random) -> str:
        metric = rng.choice(domain.metrics)
        metric2 = rng.choice([m for m in domain.metrics if m != metric])
        dim = rng.choice(domain.dimensions)
        dim2 = rng.choice([d for d in domain.dimensions if d != dim])
        artifact = rng.choice(ARTIFACTS)
        adjective = rng.choice(ADJECTIVES)
        team = rng.choice(domain.teams)
        form = rng.randrange(14)
        if form == 0:
            text = f"{domain.name} {artifact}"
        elif form == 1:
            text = f"{metric} by {dim}"
        elif form == 2:
            text = f"{adjective} {metric} {artifact}"
        elif form == 3:
            text = f"{metric} vs. {metric2} by {dim}"
        elif form == 4:
            text = f"{adjective} {domain.name} {artifact}"
        elif form == 5:
            text = f"{domain.name} {artifact} for {team}"
        elif form == 6:
            text = f"{metric} {artifact}: {rng.choice(REGIONS)}"
        elif form == 7:
            text = f"FY{rng.randrange(23, 27)} {metric} {artifact}"
        elif form == 8:
            text = f"{metric} Deep Dive: {dim} and {dim2}"
        elif form == 9:
            text = f"How {dim} Drives {metric}"
        elif form == 10:
            text = f"{team} {metric} {artifact}"
        elif form == 11:
            text = f"{metric} and {metric2} {artifact}"
        elif form == 12:
            text = f"{domain.name}: {metric} by {dim}"
        else:
            text = f"{adjective} {metric} by {dim}"
        return title_case(text)

    # Descriptions are three to five sentences, one from each slot below, all about the same domain.
    def opening(self, domain: Domain, rng: random.Random) -> str:
        m1, m2, m3 = rng.sample(domain.metrics, 3)
        d1, d2, d3 = rng.sample(domain.dimensions, 3)
        src, wh, grain = rng.choice(domain.sources), rng.choice(WAREHOUSES), rng.choice(GRAINS)
        form = rng.randrange(6)
        if form == 0:
            return f"Tracks {m1} and {m2} by {d1} and {d2}, refreshed {grain} from {src} in {wh}."
        if form == 1:
            return f"A {grain.replace('every ', '')} view of {m1} across every {d1}, with drill-downs into {d2} and {d3}."
        if form == 2:
            return (
                f"Answers the question every {rng.choice(domain.teams)} review starts with: "
                f"which {d1} moved {m1} this {rng.choice(PERIODS)}?"
            )
        if form == 3:
            return f"Brings {m1}, {m2} and {m3} together on one page, sliced by {d1} and read live from {wh}."
        if form == 4:
            return (
                f"Compares {m1} with plan and with last year for every {d1}, straight from the {src} table."
            )
        return f"Shows how {m1} and {m2} change over time for each {d1}, built on {src} in {wh}."

    def visuals(self, domain: Domain, rng: random.Random) -> str:
        m1, m2 = rng.sample(domain.metrics, 2)
        d1 = rng.choice(domain.dimensions)
        c1, c2 = rng.sample(CHARTS, 2)
        form = rng.randrange(5)
        if form == 0:
            return f"The top of the page has a {c1} of {m1}; below it a {c2} breaks {m2} down by {d1}."
        if form == 1:
            return f"Start with the {c1} of {m1} over time, then use the {c2} to compare each {d1}."
        if form == 2:
            return f"It includes a {c1} of {m1} by {d1} and a {c2} that highlights outliers in {m2}."
        if form == 3:
            return f"Every element links to the underlying rows, so a spike in {m1} leads straight to the {d1} behind it."
        return f"A {c1} summarises {m1}, and a {c2} ranks each {d1} by {m2}."

    def purpose(self, domain: Domain, rng: random.Random) -> str:
        team, goal = rng.choice(domain.teams), rng.choice(domain.goals)
        form = rng.randrange(4)
        if form == 0:
            return f"Built for the {team} team to {goal}."
        if form == 1:
            return f"Used in the {rng.choice(('weekly', 'monthly', 'quarterly'))} {team} review to {goal}."
        if form == 2:
            return f"{team} leads use it to {goal} without waiting on an analyst."
        return f"The goal: {goal}."

    def note(self, domain: Domain, rng: random.Random) -> str:
        form = rng.randrange(4)
        if form <= 1:
            return rng.choice(domain.notes)
        if form == 2:
            return (
                f"Amounts are in {rng.choice(CURRENCIES)}; {rng.choice(domain.metrics)} excludes test accounts "
                "and internal users."
            )
        return (
            f"Data comes from {rng.choice(domain.sources)} and is modelled in dbt before it lands in "
            f"{rng.choice(WAREHOUSES)}."
        )

    def tip(self, domain: Domain, rng: random.Random) -> str:
        c1, c2 = rng.sample(CONTROLS, 2)
        form = rng.randrange(4)
        if form == 0:
            return (
                f"Use the {c1} and {c2} controls at the top to narrow the view; every chart updates together."
            )
        if form == 1:
            return f"Duplicate it and point it at your own {rng.choice(domain.sources)} table to get started."
        if form == 2:
            return f"Feedback welcome: leave a comment on the {rng.choice(CHARTS)} if a definition looks off."
        return f"Switch the {c1} control to compare {rng.choice(domain.dimensions)} groups side by side."

    def description(self, domain: Domain, rng: random.Random) -> str:
        parts = [self.opening(domain, rng), self.visuals(domain, rng), self.purpose(domain, rng)]
        if rng.random() < 0.7:
            parts.append(self.note(domain, rng))
        if rng.random() < 0.4:
            parts.append(self.tip(domain, rng))
        return " ".join(_sentence(p) for p in parts)

    def tag_slugs(self, domain: Domain, rng: random.Random) -> list[str]:
        """Two or three of the domain's tags and sometimes a generic one."""
        slugs = rng.sample(domain.tags, min(len(domain.tags), rng.choice((2, 2, 3, 3, 3))))
        if rng.random() < 0.45:
            extra = rng.choice(GENERIC_TAGS)
            if extra not in slugs:
                slugs.append(extra)
        return slugs

    def bio(self, rng: random.Random) -> str:
        topics = list(TOPICS) + [d.name.lower() for d in DOMAINS]
        t1, t2 = rng.sample(topics, 2)
        role = rng.choice(ROLES)
        form = rng.randrange(4)
        if form == 0:
            text = f"{role} who builds Sigma workbooks about {t1} and {t2}."
        elif form == 1:
            text = f"{rng.randrange(2, 16)} years in analytics, these days mostly {t1}. {role} by title."
        elif form == 2:
            text = f"Turning {rng.choice(rng.choice(DOMAINS).sources)} data into answers about {t1}. {role}."
        else:
            text = f"{role} at a {rng.choice(('startup', 'scale-up', 'retailer', 'bank', 'hospital group', 'manufacturer', 'SaaS company', 'consultancy'))}; interested in {t1}."
        extra = rng.choice(BIO_EXTRAS)
        return f"{text} {extra}".strip()


TEXT = TextGenerator()

# =========================================================================================================
# Shared helpers
# =========================================================================================================

EMBED_PREFIX = "https://app.sigmacomputing.com/embed/1-"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE62_PAIRS = [a + b for a in _BASE62 for b in _BASE62]
_EMBED_SPACE = 62**22
# Multiplying by a number coprime with 62 is a bijection on [0, 62**22): distinct keys give distinct ids.
_EMBED_MULTIPLIER = 0x9E3779B97F4A7C15F39CC0605CEDC835  # full width, odd and not a multiple of 31
_DEMO_EMBED_SALT = 0x1F2E3D4C5B6A79880123456789ABCDEF % _EMBED_SPACE
_BULK_EMBED_SALT = 0x7A6B5C4D3E2F10FFEEDDCCBBAA998877 % _EMBED_SPACE


def _embed_url(key: int, salt: int) -> str:
    value = (salt + key * _EMBED_MULTIPLIER) % _EMBED_SPACE
    pairs = _BASE62_PAIRS
    chars = []
    for _ in range(11):
        value, rest = divmod(value, 3844)
        chars.append(pairs[rest])
    return EMBED_PREFIX + "".join(chars)


def demo_embed_url(index: int) -> str:
    """The demo workbook number ``index``'s embed link: fixed, so reruns find the same workbook."""
    return _embed_url(index, _DEMO_EMBED_SALT)


def bulk_embed_url(workbook_id: int) -> str:
    return _embed_url(workbook_id, _BULK_EMBED_SALT)


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def ensure_tags(slugs: Iterable[str] | None = None) -> tuple[dict[str, Tag], int]:
    """The tags by generator slug (created when missing) and how many were created. A tag that already
    exists under the same slug or the same name in another case is reused as it is."""
    tags: dict[str, Tag] = {}
    created = 0
    existing = {t.slug: t for t in Tag.objects.all().only("pk", "slug", "name")}
    for slug in slugs if slugs is not None else all_tag_slugs():
        tag = existing.get(slug) or Tag.objects.filter(name__lower=ci(slug)).first()
        if tag is None:
            tag = Tag.objects.create(name=slug, slug=slug, colour=tag_colour(slug))
            created += 1
        tags[slug] = tag
    return tags, created


try:  # one definition of the denormalised tag text that the full-text column reads
    from workbooks.services import tag_names_text
except ImportError:  # pragma: no cover - services is optional for this module

    def tag_names_text(names: Iterable[str]) -> str:
        return " ".join(sorted(names, key=str.lower))


# Workbook.tag_names feeds the PostgreSQL full-text column; written only when the model has it.
HAS_TAG_NAMES = any(f.name == "tag_names" for f in Workbook._meta.concrete_fields)


def recompute_trending() -> int:
    return services.trending_recompute().changed


# =========================================================================================================
# The demo: small, believable, idempotent
# =========================================================================================================

DEMO_WORKBOOKS = 200
# Demo workbooks that get a raster thumbnail (drawn by demo_images, through the upload pipeline); the rest
# show generated previews, as a real gallery mixes both. Each costs ~0.5 s of AVIF/WebP/JPEG rendering.
DEMO_THUMBNAILS = 24
DEMO_FEATURED = 8
STATS_DAYS = 30


@dataclass(frozen=True)
class DemoWorkbook:
    index: int
    author: str  # username
    title: str
    description: str
    tags: tuple[str, ...]
    visibility: str
    published_at: dt.datetime | None
    created_at: dt.datetime
    is_featured: bool
    popularity: float  # average views per day

    @property
    def embed_url(self) -> str:
        return demo_embed_url(self.index)


def demo_workbook_plan(
    usernames: Sequence[str], *, count: int = DEMO_WORKBOOKS, now: dt.datetime | None = None
) -> list[DemoWorkbook]:
    """The demo workbooks: deterministic apart from dates, which are relative to ``now``."""
    now = now or timezone.now()
    rng = random.Random(2026)
    titles: set[str] = set()
    plan = []
    # A few prolific authors, a long tail, and the demo staff account with a handful of its own.
    weights = [1.0 / (1 + i) ** 0.7 for i in range(len(usernames))]
    for index in range(count):
        domain = DOMAINS[index % len(DOMAINS)] if index < len(DOMAINS) else rng.choice(DOMAINS)
        title = TEXT.title(domain, rng)
        for _ in range(20):  # distinct titles, as in a real gallery
            if title.lower() not in titles:
                break
            title = TEXT.title(domain, rng)
        titles.add(title.lower())
        featured = index < DEMO_FEATURED
        roll = rng.random()
        if featured or roll >= 0.13:
            visibility, draft = Visibility.PUBLIC, False
        elif roll < 0.05:
            visibility, draft = Visibility.PUBLIC, True
        elif roll < 0.08:
            visibility, draft = Visibility.PRIVATE, False
        else:
            visibility, draft = Visibility.UNLISTED, False
        # Featured ones are recent; the rest spread over two years, more of them recently.
        age_days = rng.uniform(1, 45) if featured else 730 * rng.random() ** 1.6
        published = now - dt.timedelta(days=age_days, minutes=rng.randrange(1440))
        created = published - dt.timedelta(days=rng.random() ** 2 * 10)
        author = DEMO_STAFF_USERNAME if index % 40 == 7 else rng.choices(usernames, weights=weights, k=1)[0]
        plan.append(
            DemoWorkbook(
                index=index,
                author=author,
                title=title,
                description=TEXT.description(domain, rng),
                tags=tuple(TEXT.tag_slugs(domain, rng)),
                visibility=visibility,
                published_at=None if draft else published,
                created_at=created,
                is_featured=featured,
                popularity=(8 if featured else 1) * rng.lognormvariate(2.3, 0.9),
            )
        )
    return plan


@transaction.atomic
def seed_gallery(*, users: int = 30, workbooks: int = DEMO_WORKBOOKS) -> dict[str, int]:
    """Seed the demo gallery; idempotent. Returns what was created and the totals.

    Existing demo workbooks (found by their embed link) are left as they are, so edits made in the app
    survive a rerun; only the statistics of days without a row are added, then the counters are
    recomputed from the rows.
    """
    result = seed_people(users)
    now = timezone.now()
    today = now.date()
    usernames = [u for u, _, _ in demo_people(users)]
    people = {
        u.username.lower(): u for u in User.objects.filter(username__in=[*usernames, DEMO_STAFF_USERNAME])
    }
    authors = [name for name in usernames if name.lower() in people]
    if not authors:
        authors = [DEMO_STAFF_USERNAME]
    tags, tags_created = ensure_tags()
    plan = demo_workbook_plan(authors, count=workbooks, now=now)

    existing = dict(
        Workbook.objects.filter(sigma_embed_url__in=[p.embed_url for p in plan]).values_list(
            "sigma_embed_url", "pk"
        )
    )
    new = [p for p in plan if p.embed_url not in existing]
    objs = [
        Workbook(
            author=people.get(p.author.lower()) or people[DEMO_STAFF_USERNAME],
            title=p.title,
            slug=slugify(p.title)[:200] or "workbook",
            description=p.description,
            sigma_embed_url=p.embed_url,
            visibility=p.visibility,
            # bulk_create skips Workbook.save(), which gives an unlisted workbook its token.
            share_token=new_share_token() if p.visibility == Visibility.UNLISTED else None,
            published_at=p.published_at,
            is_featured=p.is_featured,
            created_at=p.created_at,
            **({"tag_names": tag_names_text(tags[s].name for s in p.tags)} if HAS_TAG_NAMES else {}),
        )
        for p in new
    ]
    Workbook.objects.bulk_create(objs, batch_size=500)
    ids = {**existing, **{o.sigma_embed_url: o.pk for o in objs}}
    WorkbookTag.objects.bulk_create(
        [WorkbookTag(workbook_id=ids[p.embed_url], tag_id=tags[s].pk) for p in new for s in p.tags],
        ignore_conflicts=True,
    )

    # Favorites (for new workbooks only, so an un-favorite made in the app stays undone).
    rng = random.Random(4242)
    by_index = {p.index: p for p in plan}
    favoritable = [p for p in plan if p.published_at is not None and p.visibility != Visibility.PRIVATE]
    fav_weights = [p.popularity for p in favoritable]
    new_indexes = {p.index for p in new}
    favorites: list[Favorite] = []
    favorite_days: dict[tuple[int, dt.date], int] = {}
    for person in sorted(people.values(), key=lambda u: u.username.lower()):
        wanted = min(len(favoritable), int(rng.paretovariate(1.6) * 6))
        chosen = {p.index for p in rng.choices(favoritable, weights=fav_weights, k=wanted)}
        for index in sorted(chosen):
            p = by_index[index]
            if p.author.lower() == person.username.lower():
                continue
            assert p.published_at is not None
            start = max(p.published_at, now - dt.timedelta(days=90))
            created = start + (now - start) * rng.random()
            if index in new_indexes:
                favorites.append(Favorite(user=person, workbook_id=ids[p.embed_url], created_at=created))
                key = (index, created.date())
                favorite_days[key] = favorite_days.get(key, 0) + 1
    Favorite.objects.bulk_create(favorites, batch_size=1000, ignore_conflicts=True)

    # Statistics: one row per day for the last 30 days of every published, non-private workbook.
    have = set(
        WorkbookDailyStat.objects.filter(
            workbook_id__in=ids.values(), date__gt=today - dt.timedelta(days=STATS_DAYS)
        ).values_list("workbook_id", "date")
    )
    stats: list[WorkbookDailyStat] = []
    for p in favoritable:
        assert p.published_at is not None
        day_rng = random.Random(p.index * 7919)
        for age in range(STATS_DAYS - 1, -1, -1):
            day = today - dt.timedelta(days=age)
            views = day_rng.random()  # drawn for every day so a later top-up does not shift the sequence
            if day < p.published_at.date() or (ids[p.embed_url], day) in have:
                continue
            weekday = 0.6 if day.weekday() >= 5 else 1.1
            burst = 6 if p.index % 17 == 3 and age < 3 else 1  # a few workbooks trending right now
            count = int(p.popularity * weekday * burst * (0.5 + views))
            favs = favorite_days.get((p.index, day), 0)
            stats.append(
                WorkbookDailyStat(
                    workbook_id=ids[p.embed_url], date=day, views=max(count, 5 * favs), favorites=favs
                )
            )
    WorkbookDailyStat.objects.bulk_create(stats, batch_size=1000, ignore_conflicts=True)

    thumbnailed = _demo_thumbnails(new, ids, tags)
    _join_before_publishing(list(people.values()))
    _recount(list(ids.values()))
    recompute_trending()
    return {
        **result,
        "workbooks": len(objs),
        "tags": tags_created,
        "favorites": len(favorites),
        "stats": len(stats),
        "thumbnails": thumbnailed,
        "total_workbooks": len(ids),
        "total_favorites": Favorite.objects.filter(workbook_id__in=ids.values()).count(),
    }


def _join_before_publishing(people: list[User]) -> None:
    """Demo people joined some days to months before their first workbook (they were created just now)."""
    firsts = (
        Workbook.objects.filter(author__in=people)
        .values("author")
        .annotate(first=models.Min("created_at"))
        .values_list("author", "first")
    )
    for author_id, first in firsts:
        joined = first - dt.timedelta(days=3 + (author_id * 37) % 120, hours=(author_id * 7) % 24)
        User.objects.filter(pk=author_id, created_at__gt=joined).update(created_at=joined, date_joined=joined)


def _demo_thumbnails(new: list, ids: dict[str, int], tags: dict[str, Tag]) -> int:
    """Raster thumbnails for the first DEMO_THUMBNAILS new listed workbooks (featured first, then newest):
    a Pillow chart, validated and stored as a master by the upload code, its derivatives rendered by the
    Celery task after commit (in-process on the embedded defaults, by the worker with a broker)."""
    listed = [p for p in new if p.published_at is not None and p.visibility == Visibility.PUBLIC]
    listed.sort(key=lambda p: (not p.is_featured, -p.published_at.timestamp()))
    chosen = listed[:DEMO_THUMBNAILS]
    workbooks = Workbook.objects.select_related("author").in_bulk([ids[p.embed_url] for p in chosen])
    for p in chosen:
        workbook = workbooks[ids[p.embed_url]]
        first = min((tags[s] for s in p.tags), key=lambda t: t.name.casefold(), default=None)
        png = demo_images.chart_png(
            workbook_id=workbook.pk, tag_slugs=list(p.tags), colour=first.colour if first else "#2456d3"
        )
        master = thumbnails.prepare_master(SimpleUploadedFile("chart.png", png, content_type="image/png"))
        services.workbook_set_thumbnail(workbook=workbook, thumbnail=master)
    return len(chosen)


def _recount(workbook_ids: list[int]) -> None:
    """favorite_count = the favorite rows and view_count = the sum of the daily views, for these workbooks."""
    Workbook.objects.filter(pk__in=workbook_ids).update(
        favorite_count=Coalesce(maintenance.favorite_rows_count(), Value(0)),
        view_count=Coalesce(maintenance.daily_views_sum(), Value(0)),
    )


# =========================================================================================================
# Progress display
# =========================================================================================================


# =========================================================================================================
# The bulk loader
# =========================================================================================================

MINUTES_PER_DAY = 1440
HISTORY_DAYS = 3 * 365  # users joined over the last three years
PUBLISH_DAYS = 2 * 365  # workbooks were published over the last two years
FAVORITE_SKEW = 2.2  # popularity rank = n * u**skew: larger is more concentrated on the top workbooks
AUTHOR_SKEW = 2.5
FOLLOW_SKEW = 2.5
VIEW_RATE_TOP = 2000.0  # views per day of the most popular workbook
VIEW_RATE_DECAY = 0.8  # rate(rank) = VIEW_RATE_TOP * (rank + 1) ** -VIEW_RATE_DECAY
DEFAULT_FAVORITES_PER_WORKBOOK = 5
DEFAULT_FOLLOWS_PER_USER = 10
DEFAULT_MAX_DENSITY = 0.25  # default favorites/follows never exceed this share of the possible pairs
INDEX_REBUILD_MIN_ROWS = 50_000


class BulkError(ValueError):
    """The request cannot be met (e.g. more favorites than possible pairs); the message says why."""


@dataclass
class TableStat:
    table: str
    rows: int = 0
    seconds: float = 0.0


@dataclass
class BulkResult:
    tables: list[TableStat] = field(default_factory=list)
    phases: list[tuple[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def count(self, table: str) -> int:
        return sum(t.rows for t in self.tables if t.table == table)


def spread_counts(total: int, n: int, cap: int, rng: random.Random, *, alpha: float = 1.5) -> list[int]:
    """Split ``total`` into ``n`` heavy-tailed counts, each at most ``cap`` (a few power users, a long
    tail). Raises BulkError when ``n * cap < total``."""
    if total <= 0 or n <= 0:
        return [0] * max(n, 0)
    if n * cap < total:
        raise BulkError(f"cannot place {total:,} rows: at most {n * cap:,} are possible")
    weights = [min(rng.paretovariate(alpha), 60.0) for _ in range(n)]
    scale = total / sum(weights)
    counts = [min(cap, int(w * scale)) for w in weights]
    remaining = total - sum(counts)
    while remaining > 0:
        open_slots = [i for i in range(n) if counts[i] < cap]
        rng.shuffle(open_slots)
        for i in open_slots[:remaining]:
            counts[i] += 1
        remaining = total - sum(counts)
    return counts


def _pick_distinct(
    k: int,
    n: int,
    skew: float,
    rng: random.Random,
    exclude: Callable[[int], bool] | None = None,
) -> list[int]:
    """``k`` distinct ranks in [0, n), drawn with a power law towards rank 0; falls back to uniform draws
    when the skewed ones keep hitting ranks already taken. ``exclude(rank)`` rejects a rank."""
    chosen: set[int] = set()
    rnd = rng.random
    if k > n // 3:
        pool = [r for r in range(n) if not (exclude and exclude(r))]
        return rng.sample(pool, min(k, len(pool)))
    attempts = 0
    limit = 4 * k + 50
    while len(chosen) < k and attempts < limit:
        attempts += 1
        rank = int(n * rnd() ** skew)
        if rank in chosen or (exclude is not None and exclude(rank)):
            continue
        chosen.add(rank)
    while len(chosen) < k:  # rare: only for small n
        rank = int(n * rnd())
        if rank not in chosen and not (exclude is not None and exclude(rank)):
            chosen.add(rank)
    return list(chosen)


@dataclass
class _TableSpec:
    """Where rows go: a model's table and the columns we write, plus constant values for any column we do
    not know about (added by a later migration) that needs a value."""

    model: type[models.Model]
    fields: tuple[str, ...]
    columns: tuple[str, ...] = ()
    extra: tuple[Any, ...] = ()

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    def resolve(self) -> None:
        opts = self.model._meta
        concrete = {f.name: f for f in opts.concrete_fields}
        columns = [concrete[name].column for name in self.fields]
        extra_cols, extra_vals = [], []
        for f in opts.concrete_fields:
            if f.name in self.fields or getattr(f, "generated", False):
                continue
            if getattr(f, "db_default", models.NOT_PROVIDED) is not models.NOT_PROVIDED:
                continue
            if f.null and not f.has_default():
                continue
            extra_cols.append(f.column)
            extra_vals.append(f.get_db_prep_save(f.get_default(), connection))
        self.columns = tuple(columns + extra_cols)
        self.extra = tuple(extra_vals)


class BulkLoader:
    """Add ``workbooks`` workbooks, ``users`` users, ``favorites`` favorites and ``follows`` follows
    (plus their tags and daily statistics) on top of what exists. See the module docstring."""

    def __init__(
        self,
        *,
        workbooks: int,
        users: int,
        favorites: int | None = None,
        follows: int | None = None,
        batch_size: int = 10_000,
        seed: int = 2026,
        progress_stream: TextIO | None = None,
        log: Callable[[str], None] | None = None,
        rebuild_indexes: str = "auto",
        now: dt.datetime | None = None,
    ) -> None:
        if min(workbooks, users) < 0 or (favorites or 0) < 0 or (follows or 0) < 0:
            raise BulkError("row counts must be zero or more")
        if batch_size < 1:
            raise BulkError("the batch size must be at least 1")
        if rebuild_indexes not in {"auto", "always", "never"}:
            raise BulkError("rebuild_indexes must be auto, always or never")
        self.n_workbooks, self.n_users = workbooks, users
        self.want_favorites, self.want_follows = favorites, follows
        self.batch_size, self.seed = batch_size, seed
        self.progress_stream = progress_stream
        self.log = log or (lambda message: None)
        self.rebuild_indexes = rebuild_indexes
        self.now = now or timezone.now()
        self.vendor = connection.vendor
        self.result = BulkResult()

    # --- time: every timestamp is a minute offset from self.t0; strings are built from two lookups ---

    def _init_clock(self) -> None:
        today = self.now.astimezone(dt.UTC).date()
        self.t0 = dt.datetime.combine(today - dt.timedelta(days=HISTORY_DAYS), dt.time(), tzinfo=dt.UTC)
        self.now_min = int((self.now - self.t0).total_seconds() // 60) - 1  # nothing in the future
        self.today_day = HISTORY_DAYS
        suffix = "+00" if self.vendor == "postgresql" else ""
        rng = random.Random(self.seed ^ 0x5EC0)
        self.day_str = [
            (self.t0.date() + dt.timedelta(days=d)).isoformat() + " " for d in range(HISTORY_DAYS + 2)
        ]
        self.date_str = [s[:10] for s in self.day_str]
        self.minute_str = [
            f"{m // 60:02d}:{m % 60:02d}:{rng.randrange(60):02d}{suffix}" for m in range(MINUTES_PER_DAY)
        ]
        self.weekday0 = self.t0.weekday()

    def ts(self, minute: int) -> str:
        day, rest = divmod(minute, MINUTES_PER_DAY)
        return self.day_str[day] + self.minute_str[rest]

    # --- entry point ---

    def run(self) -> BulkResult:
        started = time.perf_counter()
        self._init_clock()
        self.tags, _ = ensure_tags()
        with transaction.atomic():
            self._prepare_session()
            phase = time.perf_counter()
            self._read_existing()
            self._check_capacity()
            self._plan_users()
            self._plan_workbooks()
            self._plan_favorites()
            self._plan_stats()
            self._phase("plan", phase)
            specs = self._specs()
            deferred = self._defer_indexes(specs)
            self._write(specs["user"], self._user_rows(), self.n_users)
            self._write(specs["workbook"], self._workbook_rows(), self.n_workbooks)
            self._write(specs["workbooktag"], self._workbooktag_rows(), self.n_workbook_tags)
            self._write(specs["favorite"], self._favorite_rows(), len(self.fav_user))
            self._write(specs["stat"], self._stat_rows(), len(self.st_wb))
            self._write(specs["follow"], self._follow_rows(), self.n_follows)
            self._restore_indexes(deferred)
            phase = time.perf_counter()
            self._reset_sequences()
            self._phase("sequences", phase)
        if self.vendor == "postgresql":
            phase = time.perf_counter()
            with connection.cursor() as cursor:
                for spec in specs.values():
                    cursor.execute(f"ANALYZE {connection.ops.quote_name(spec.table)}")
            self._phase("analyze", phase)
        self.result.seconds = time.perf_counter() - started
        return self.result

    def _phase(self, name: str, started: float) -> None:
        seconds = time.perf_counter() - started
        self.result.phases.append((name, seconds))
        self.log(f"{name}: {seconds:.1f}s")

    def _prepare_session(self) -> None:
        if self.vendor != "postgresql":
            return
        tables = ", ".join(
            connection.ops.quote_name(m._meta.db_table)
            for m in (User, Workbook, WorkbookTag, Favorite, WorkbookDailyStat, Follow)
        )
        with connection.cursor() as cursor:
            # The site's connection settings cap statements at 30 s; a load is one long transaction.
            cursor.execute("SET LOCAL statement_timeout = 0")
            cursor.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
            cursor.execute("SET LOCAL synchronous_commit = off")
            # Check now whatever foreign keys earlier writes in this transaction deferred: PostgreSQL
            # refuses to rebuild an index on a table with pending trigger events. Our own writes go in
            # dependency order (users, workbooks, then the rows that point at them), so immediate
            # checks cost nothing extra.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            # No concurrent inserts while we hand out ids; readers are not blocked (until index rebuilds).
            cursor.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")

    # --- planning ---

    def _read_existing(self) -> None:
        def next_id(model: type[models.Model]) -> int:
            top = model._default_manager.aggregate(m=models.Max("pk"))["m"]
            return (top or 0) + 1

        self.existing_user_ids = list(User.objects.order_by("pk").values_list("pk", flat=True))
        self.user0 = next_id(User)
        self.workbook0 = next_id(Workbook)
        self.workbooktag0 = next_id(WorkbookTag)
        self.favorite0 = next_id(Favorite)
        self.stat0 = next_id(WorkbookDailyStat)
        self.follow0 = next_id(Follow)
        # Generated names end with the new id; only existing names ending in digits could collide.
        self.taken_usernames = {
            u.lower()
            for u in User.objects.filter(username__regex=r"[0-9]$").values_list("username", flat=True)
        }
        self.taken_emails = {
            e.lower() for e in User.objects.filter(email__regex=r"[0-9]@").values_list("email", flat=True)
        }
        self.existing_rows = {
            m._meta.db_table: m.objects.count()
            for m in (User, Workbook, WorkbookTag, Favorite, WorkbookDailyStat, Follow)
        }

    def _check_capacity(self) -> None:
        n_all_users = len(self.existing_user_ids) + self.n_users
        if self.n_workbooks and not n_all_users:
            raise BulkError("workbooks need authors: there are no users yet, so add some with --users")
        # At most ~95% of new workbooks are favoritable (published, public or unlisted); use 85% to be safe.
        favoritable_estimate = int(self.n_workbooks * 0.85)
        fav_capacity = n_all_users * favoritable_estimate
        if self.want_favorites is None:
            self.target_favorites = min(
                self.n_workbooks * DEFAULT_FAVORITES_PER_WORKBOOK, int(fav_capacity * DEFAULT_MAX_DENSITY)
            )
        else:
            if self.want_favorites and not self.n_workbooks:
                raise BulkError("favorites are added to the new workbooks: give --workbooks N as well")
            if self.want_favorites > fav_capacity // 2:
                raise BulkError(
                    f"{self.want_favorites:,} favorites is more than half of the {fav_capacity:,} possible "
                    "(user, new workbook) pairs; add users or workbooks, or ask for fewer favorites"
                )
            self.target_favorites = self.want_favorites
        follow_capacity = self.n_users * max(n_all_users - 1, 0)
        if self.want_follows is None:
            self.n_follows = min(
                self.n_users * DEFAULT_FOLLOWS_PER_USER, int(follow_capacity * DEFAULT_MAX_DENSITY)
            )
        else:
            if self.want_follows and not self.n_users:
                raise BulkError("follows are made by the new users: give --users M as well")
            if self.want_follows > follow_capacity // 2:
                raise BulkError(
                    f"{self.want_follows:,} follows is more than half of the {follow_capacity:,} possible "
                    "(new user, user) pairs; add users or ask for fewer follows"
                )
            self.n_follows = self.want_follows

    def _plan_users(self) -> None:
        rng = random.Random(self.seed * 31 + 1)
        self.user_created = array("i", [0]) * self.n_users
        span = max(self.now_min - MINUTES_PER_DAY, 1)
        for j in range(self.n_users):
            self.user_created[j] = int(span * rng.random())
        # Ranked users: prolific authors are also the most followed.
        self.all_users = self.existing_user_ids + list(range(self.user0, self.user0 + self.n_users))
        ranked = list(self.all_users)
        rng.shuffle(ranked)
        self.ranked_users = ranked

    def created_of(self, user_id: int) -> int:
        j = user_id - self.user0
        return self.user_created[j] if j >= 0 else 0

    def _plan_workbooks(self) -> None:
        n = self.n_workbooks
        rng = random.Random(self.seed * 31 + 2)
        rnd = rng.random
        self.wb_author = array("q", [0]) * n
        self.wb_pub = array("i", [-1]) * n
        self.wb_created = array("i", [0]) * n
        self.wb_vis = bytearray(n)  # 0 public, 1 unlisted, 2 private
        self.wb_featured = bytearray(n)
        ranked, n_users = self.ranked_users, len(self.ranked_users)
        user0, user_created = self.user0, self.user_created
        now_min = self.now_min
        publish_span = PUBLISH_DAYS * MINUTES_PER_DAY
        progress = Progress(self.progress_stream, "plan workbooks", n)
        for i in range(n):
            author = ranked[int(n_users * rnd() ** AUTHOR_SKEW)] if n_users else 0
            self.wb_author[i] = author
            joined = user_created[author - user0] if author >= user0 else 0
            roll = rnd()
            if roll < 0.05:  # draft
                created = now_min - int(90 * MINUTES_PER_DAY * rnd())
                self.wb_created[i] = max(created, joined)
                continue
            if roll < 0.08:
                self.wb_vis[i] = 2
            elif roll < 0.13:
                self.wb_vis[i] = 1
            elif rnd() < 0.023:
                self.wb_featured[i] = 1
            pub = now_min - int(publish_span * rnd() ** 1.35)
            if pub < joined + 60:
                pub = min(now_min, joined + 60 + int((now_min - joined - 60) * rnd()))
            self.wb_pub[i] = pub
            self.wb_created[i] = max(joined, pub - int(14 * MINUTES_PER_DAY * rnd() ** 2))
            if i % 65536 == 0:
                progress.update(i)
        progress.update(n)
        progress.close()
        favoritable = [i for i in range(n) if self.wb_pub[i] >= 0 and self.wb_vis[i] != 2]
        rng.shuffle(favoritable)  # popularity rank is independent of id and date
        self.favoritable = array("i", favoritable)
        self.n_workbook_tags = int(n * 2.9)  # an estimate until the workbook rows are generated

    def _plan_favorites(self) -> None:
        rng = random.Random(self.seed * 31 + 3)
        rnd = rng.random
        n_fav = len(self.favoritable)
        users = self.all_users
        total = (
            min(self.target_favorites, len(users) * n_fav // 2)
            if self.want_favorites is None
            else self.target_favorites
        )
        if self.want_favorites is not None and total > len(users) * n_fav:
            raise BulkError(f"only {len(users) * n_fav:,} (user, workbook) pairs are possible")
        # At most half of the workbooks per person, so the skewed draws stay cheap.
        counts = (
            spread_counts(total, len(users), max(1, (n_fav + 1) // 2), rng) if total else [0] * len(users)
        )
        self.fav_user = array("q")
        self.fav_wb = array("i")
        self.fav_min = array("i")
        self.fav_count = array("i", [0]) * self.n_workbooks
        self.recent_favs: dict[int, list[int]] = {}
        stats_start = (self.today_day - STATS_DAYS + 1) * MINUTES_PER_DAY
        favoritable, wb_author, wb_pub = self.favoritable, self.wb_author, self.wb_pub
        now_min = self.now_min
        progress = Progress(self.progress_stream, "plan favorites", total)
        done = 0
        for user_id, k in zip(users, counts, strict=True):
            if not k:
                continue
            joined = self.created_of(user_id)

            def own(r: int, u: int = user_id) -> bool:  # nobody favorites their own workbook
                return wb_author[favoritable[r]] == u

            ranks = _pick_distinct(k, n_fav, FAVORITE_SKEW, rng, exclude=own)
            for rank in sorted(ranks):
                off = favoritable[rank]
                lo = max(wb_pub[off], joined)
                minute = lo + int((now_min - lo) * rnd()) if now_min > lo else now_min
                self.fav_user.append(user_id)
                self.fav_wb.append(off)
                self.fav_min.append(minute)
                self.fav_count[off] += 1
                if minute >= stats_start:
                    self.recent_favs.setdefault(off, []).append(minute // MINUTES_PER_DAY)
            done += len(ranks)
            if done - progress.done >= 100_000:
                progress.update(done)
        progress.update(done)
        progress.close()

    def _plan_stats(self) -> None:
        """Daily rows for the last 30 days: see the module docstring. Also fills view_count and the
        trending score (with the trending module's own formula when it exists)."""
        rng = random.Random(self.seed * 31 + 4)
        rnd = rng.random
        score_fn = score
        self.st_wb = array("i")
        self.st_day = array("i")
        self.st_views = array("i")
        self.st_favs = array("i")
        self.wb_views = array("q", [0]) * self.n_workbooks
        self.wb_trending = array("d", [0.0]) * self.n_workbooks
        first_window_day = self.today_day - STATS_DAYS + 1
        today = self.today_day
        weekday_factor = [1.1, 1.15, 1.1, 1.05, 0.95, 0.55, 0.5]
        weekday0 = self.weekday0
        progress = Progress(self.progress_stream, "plan statistics", len(self.favoritable))
        log = math.log
        for rank, off in enumerate(self.favoritable):
            rate = VIEW_RATE_TOP * (rank + 1) ** -VIEW_RATE_DECAY
            first = max(first_window_day, self.wb_pub[off] // MINUTES_PER_DAY)
            if rate >= 1:
                days = list(range(first, today + 1))
            else:  # geometric gaps: only the days that had a view are drawn
                days = []
                step = log(1.0 - rate)
                day = first - 1
                while True:
                    day += 1 + int(log(1.0 - rnd()) / step)
                    if day > today:
                        break
                    days.append(day)
            fav_days = self.recent_favs.get(off)
            fav_per_day: dict[int, int] = {}
            if fav_days:
                for d in fav_days:
                    fav_per_day[d] = fav_per_day.get(d, 0) + 1
                days = sorted(set(days).union(fav_per_day))
            burst = rnd() < 0.005
            total = 0
            recent: list[tuple[int, int, int]] = []
            for day in days:
                base = rate * weekday_factor[(weekday0 + day) % 7]
                if burst and today - day < 4:
                    base = max(base, 20.0) * 8
                views = int(base * (0.55 + 0.9 * rnd())) if base >= 1 else 1 + int(2 * rnd())
                favs = fav_per_day.get(day, 0)
                if favs:  # people view a workbook several times for every favorite
                    views = max(views, int(favs * (4 + 8 * rnd())))
                self.st_wb.append(off)
                self.st_day.append(day)
                self.st_views.append(views)
                self.st_favs.append(favs)
                total += views
                if today - day < 7:
                    recent.append((today - day, views, favs))
            self.wb_views[off] = total
            if recent:
                self.wb_trending[off] = round(score_fn(recent), 6)
            if rank % 65536 == 0:
                progress.update(rank)
        progress.update(len(self.favoritable))
        progress.close()

    # --- rows ---

    def _specs(self) -> dict[str, _TableSpec]:
        specs = {
            "user": _TableSpec(
                User,
                ("id", "password", "last_login", "is_superuser", "username", "email", "is_staff", "is_active",
                 "date_joined", "full_name", "bio", "avatar", "avatar_width", "avatar_height", "created_at"),
            ),
            "workbook": _TableSpec(
                Workbook,
                ("id", "author", "title", "slug", "description", "sigma_embed_url", "thumbnail", "thumbnail_width",
                 "thumbnail_height", "thumbnail_derivatives", "visibility", "published_at", "is_featured",
                 "view_count", "favorite_count", "trending_score", "created_at", "updated_at", "share_token")
                + (("tag_names",) if HAS_TAG_NAMES else ()),
            ),
            "workbooktag": _TableSpec(WorkbookTag, ("id", "workbook", "tag")),
            "favorite": _TableSpec(Favorite, ("id", "user", "workbook", "created_at")),
            "stat": _TableSpec(WorkbookDailyStat, ("id", "workbook", "date", "views", "favorites")),
            "follow": _TableSpec(Follow, ("id", "follower", "followed", "created_at")),
        }  # fmt: skip
        for spec in specs.values():
            spec.resolve()
        return specs

    def _user_rows(self) -> Iterator[tuple]:
        rng = random.Random(self.seed * 31 + 5)
        rnd = rng.random
        firsts = [(_ascii(n), n) for n in (*MORE_FIRST_NAMES, *{p[1].split(" ")[0] for p in demo_people(30)})]
        lasts = [
            (_ascii(n), n) for n in (*MORE_LAST_NAMES, *{p[1].split(" ", 1)[1] for p in demo_people(30)})
        ]
        bios = [TEXT.bio(rng) for _ in range(4000)]
        passwords = ["!" + "".join(rng.choice(_BASE62) for _ in range(40)) for _ in range(256)]
        taken_u, taken_e = self.taken_usernames, self.taken_emails
        for j in range(self.n_users):
            uid = self.user0 + j
            first_ascii, first = firsts[int(rnd() * len(firsts))]
            last_ascii, last = lasts[int(rnd() * len(lasts))]
            form = int(rnd() * 4)
            if form == 0:
                stem = f"{first_ascii}{last_ascii}".lower()
            elif form == 1:
                stem = f"{first_ascii}_{last_ascii}".lower()
            elif form == 2:
                stem = f"{first_ascii[0]}-{last_ascii}".lower()
            else:
                stem = f"{last_ascii}{first_ascii[:2]}".lower()
            suffix = str(uid)
            username = stem[: 30 - len(suffix)] + suffix
            email = f"{username}@{EMAIL_DOMAINS[uid % 3]}"
            if username in taken_u or email in taken_e:  # an existing person's name: rare, so be simple
                username = f"user{suffix}x"[:30]
                email = f"{username}@seed.example.com"
                while username in taken_u or email in taken_e:
                    username = f"u{int(rnd() * 10**12)}x"
                    email = f"{username}@seed.example.com"
            joined = self.ts(self.user_created[j])
            yield (
                uid, passwords[j & 255], None, False, username, email, False, True,
                joined, f"{first} {last}", bios[int(rnd() * len(bios))], "", None, None, joined,
            )  # fmt: skip

    def _text_pools(self, rng: random.Random) -> None:
        """Per domain: ~2,000 distinct titles (with slugs) and a few hundred variants of each description
        sentence, so a row is a handful of list lookups; suffixes multiply the distinct titles further."""
        self.title_pool: list[list[tuple[str, str]]] = []
        self.sentence_pools: list[tuple[list[str], ...]] = []
        self.tagset_pool: list[list[tuple[int, ...]]] = []
        self.tagtext_pool: list[list[str]] = []
        for domain in DOMAINS:
            seen: dict[str, str] = {}
            for _ in range(12_000):
                title = TEXT.title(domain, rng)
                if title not in seen:
                    seen[title] = slugify(title)[:180] or "workbook"
                if len(seen) >= 2_000:
                    break
            self.title_pool.append(list(seen.items()))
            self.sentence_pools.append(
                (
                    [_sentence(TEXT.opening(domain, rng)) for _ in range(600)],
                    [_sentence(TEXT.visuals(domain, rng)) for _ in range(400)],
                    [_sentence(TEXT.purpose(domain, rng)) for _ in range(200)],
                    [_sentence(TEXT.note(domain, rng)) for _ in range(200)],
                    [_sentence(TEXT.tip(domain, rng)) for _ in range(200)],
                )
            )
            tagsets = [TEXT.tag_slugs(domain, rng) for _ in range(128)]
            self.tagset_pool.append([tuple(self.tags[s].pk for s in slugs) for slugs in tagsets])
            self.tagtext_pool.append([tag_names_text(self.tags[s].name for s in slugs) for slugs in tagsets])
        suffixes: list[tuple[str, str]] = [("", "")] * 300
        for region in REGIONS:
            suffixes.append((f" ({region})", "-" + slugify(region)))
        for year in (2024, 2025, 2026):
            for q in (1, 2, 3, 4):
                suffixes.append((f" (Q{q} {year})", f"-q{q}-{year}"))
        for v in (2, 3, 4):
            suffixes.append((f" v{v}", f"-v{v}"))
        for extra in ("Template", "Sample Data", "Draft Ideas", "Beta", "Archive", "Team Copy"):
            suffixes.append((f" [{extra}]", "-" + slugify(extra)))
        for team in ("Finance", "Ops", "Leadership", "Analysts", "Managers", "Sales", "Marketing"):
            suffixes.append((f" for {team}", f"-for-{team.lower()}"))
        self.title_suffixes = suffixes

    def _workbook_rows(self) -> Iterator[tuple]:
        rng = random.Random(self.seed * 31 + 6)
        self._text_pools(rng)
        rnd = rng.random
        n_domains = len(DOMAINS)
        self.wb_tagset = array("H", [0]) * self.n_workbooks
        self.wb_domain = bytearray(self.n_workbooks)
        visibility = ("public", "unlisted", "private")
        suffixes, n_suffixes = self.title_suffixes, len(self.title_suffixes)
        now_min, ts = self.now_min, self.ts
        tagset_total = 0
        has_tag_names = HAS_TAG_NAMES
        for i in range(self.n_workbooks):
            wid = self.workbook0 + i
            d = int(rnd() * n_domains)
            self.wb_domain[i] = d
            titles = self.title_pool[d]
            base_title, base_slug = titles[int(rnd() * len(titles))]
            sfx_title, sfx_slug = suffixes[int(rnd() * n_suffixes)]
            s1, s2, s3, s4, s5 = self.sentence_pools[d]
            parts = [s1[int(rnd() * 600)], s2[int(rnd() * 400)], s3[int(rnd() * 200)]]
            roll = rnd()
            if roll < 0.7:
                parts.append(s4[int(rnd() * 200)])
            if roll < 0.3 or roll > 0.9:
                parts.append(s5[int(rnd() * 200)])
            tagset = int(rnd() * 128)
            self.wb_tagset[i] = tagset
            tagset_total += len(self.tagset_pool[d][tagset])
            pub = self.wb_pub[i]
            created = self.wb_created[i]
            if pub >= 0:
                updated = pub if rnd() < 0.7 else pub + int((now_min - pub) * rnd())
                published = ts(pub)
            else:
                updated = created + int((now_min - created) * rnd())
                published = None
            row = (
                wid, self.wb_author[i], base_title + sfx_title, base_slug + sfx_slug, " ".join(parts),
                bulk_embed_url(wid), "", None, None, "{}", visibility[self.wb_vis[i]], published,
                bool(self.wb_featured[i]), self.wb_views[i], self.fav_count[i], self.wb_trending[i],
                ts(created), ts(updated),
                # An unlisted workbook is reached only through its token link (random: never from the seed).
                new_share_token() if self.wb_vis[i] == 1 else None,
            )  # fmt: skip
            yield (*row, self.tagtext_pool[d][tagset]) if has_tag_names else row
        self.n_workbook_tags = tagset_total

    def _workbooktag_rows(self) -> Iterator[tuple]:
        next_id = self.workbooktag0
        pool, wb0 = self.tagset_pool, self.workbook0
        for i in range(self.n_workbooks):
            wid = wb0 + i
            for tag_id in pool[self.wb_domain[i]][self.wb_tagset[i]]:
                yield (next_id, wid, tag_id)
                next_id += 1

    def _favorite_rows(self) -> Iterator[tuple]:
        wb0, fid, ts = self.workbook0, self.favorite0, self.ts
        for k, (user_id, off, minute) in enumerate(
            zip(self.fav_user, self.fav_wb, self.fav_min, strict=True)
        ):
            yield (fid + k, user_id, wb0 + off, ts(minute))

    def _stat_rows(self) -> Iterator[tuple]:
        wb0, sid, dates = self.workbook0, self.stat0, self.date_str
        for k, (off, day, views, favs) in enumerate(
            zip(self.st_wb, self.st_day, self.st_views, self.st_favs, strict=True)
        ):
            yield (sid + k, wb0 + off, dates[day], views, favs)

    def _follow_rows(self) -> Iterator[tuple]:
        if not self.n_follows:
            return
        rng = random.Random(self.seed * 31 + 7)
        rnd = rng.random
        ranked, n = self.ranked_users, len(self.ranked_users)
        counts = spread_counts(self.n_follows, self.n_users, n - 1, rng)
        next_id, ts, now_min = self.follow0, self.ts, self.now_min
        for j, k in enumerate(counts):
            if not k:
                continue
            follower = self.user0 + j

            def themselves(r: int, f: int = follower) -> bool:  # nobody follows themselves
                return ranked[r] == f

            for rank in sorted(_pick_distinct(k, n, FOLLOW_SKEW, rng, exclude=themselves)):
                followed = ranked[rank]
                lo = max(self.user_created[j], self.created_of(followed))
                minute = lo + int((now_min - lo) * rnd()) if now_min > lo else now_min
                yield (next_id, follower, followed, ts(minute))
                next_id += 1

    # --- writing ---

    def _write(self, spec: _TableSpec, rows: Iterator[tuple], total: int) -> None:
        started = time.perf_counter()
        progress = Progress(self.progress_stream, spec.table, total)
        batch = self.batch_size
        extra = spec.extra
        if extra:
            rows = (row + extra for row in rows)
        done = 0
        if self.vendor == "postgresql":
            columns = ", ".join(connection.ops.quote_name(c) for c in spec.columns)
            sql = f"COPY {connection.ops.quote_name(spec.table)} ({columns}) FROM STDIN"
            connection.ensure_connection()
            with connection.connection.cursor() as cursor, cursor.copy(sql) as copy:
                write_row = copy.write_row
                next_report = batch
                for row in rows:
                    write_row(row)
                    done += 1
                    if done >= next_report:
                        progress.update(done)
                        next_report += batch
        else:
            columns = ", ".join(connection.ops.quote_name(c) for c in spec.columns)
            placeholders = ", ".join(["%s"] * len(spec.columns))
            sql = f"INSERT INTO {connection.ops.quote_name(spec.table)} ({columns}) VALUES ({placeholders})"  # noqa: S608 (names are ours)
            with connection.cursor() as cursor:
                chunk: list[tuple] = []
                for row in rows:
                    chunk.append(row)
                    if len(chunk) >= batch:
                        cursor.executemany(sql, chunk)
                        done += len(chunk)
                        chunk = []
                        progress.update(done)
                if chunk:
                    cursor.executemany(sql, chunk)
                    done += len(chunk)
        progress.total = max(progress.total, done)
        progress.update(done)
        progress.close()
        self.result.tables.append(TableStat(spec.table, done, time.perf_counter() - started))

    # --- PostgreSQL index handling ---

    def _planned_rows(self) -> dict[str, int]:
        return {
            User._meta.db_table: self.n_users,
            Workbook._meta.db_table: self.n_workbooks,
            WorkbookTag._meta.db_table: self.n_workbook_tags,
            Favorite._meta.db_table: len(self.fav_user),
            WorkbookDailyStat._meta.db_table: len(self.st_wb),
            Follow._meta.db_table: self.n_follows,
        }

    def _defer_indexes(self, specs: dict[str, _TableSpec]) -> list[tuple[str, str]]:
        """Drop secondary indexes, unique and foreign-key constraints of the big tables (PostgreSQL only);
        returns (description, SQL) to recreate them. Anything that cannot be dropped (another object
        depends on it) simply stays."""
        if self.vendor != "postgresql" or self.rebuild_indexes == "never":
            return []
        started = time.perf_counter()
        planned = self._planned_rows()
        restore: list[tuple[str, str]] = []
        fks: list[tuple[str, str]] = []
        with connection.cursor() as cursor:
            for spec in specs.values():
                table = spec.table
                new_rows = planned[table]
                if self.rebuild_indexes == "auto" and (
                    new_rows < INDEX_REBUILD_MIN_ROWS or new_rows < self.existing_rows[table] // 4
                ):
                    continue
                qtable = connection.ops.quote_name(table)
                cursor.execute(
                    "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype IN ('u', 'f', 'x') ORDER BY contype DESC, conname",
                    [qtable],
                )
                for name, definition, kind in cursor.fetchall():
                    if self._try(
                        cursor, f"ALTER TABLE {qtable} DROP CONSTRAINT {connection.ops.quote_name(name)}"
                    ):
                        sql = f"ALTER TABLE {qtable} ADD CONSTRAINT {connection.ops.quote_name(name)} {definition}"
                        (fks if kind == "f" else restore).append((f"{table}.{name}", sql))
                cursor.execute(
                    "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                    "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary "
                    "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
                    "ORDER BY 1",
                    [qtable],
                )
                for name, definition in cursor.fetchall():
                    if self._try(cursor, f"DROP INDEX {name}"):
                        restore.append((name, definition))
        if restore or fks:
            self._phase(f"drop {len(restore) + len(fks)} indexes and constraints", started)
        return restore + fks  # foreign keys last: they are checked against the rebuilt tables

    @staticmethod
    def _try(cursor: Any, sql: str) -> bool:
        sid = transaction.savepoint()
        try:
            cursor.execute(sql)
        except Exception:  # a dependent object (e.g. a foreign key elsewhere) keeps it in place
            transaction.savepoint_rollback(sid)
            return False
        transaction.savepoint_commit(sid)
        return True

    def _restore_indexes(self, deferred: list[tuple[str, str]]) -> None:
        if not deferred:
            return
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for i, (name, sql) in enumerate(deferred, 1):
                step = time.perf_counter()
                cursor.execute(sql)
                if self.progress_stream is not None:
                    self.progress_stream.write(
                        f"rebuilt {i}/{len(deferred)} {name} in {time.perf_counter() - step:.1f}s\n"
                    )
        self._phase("rebuild indexes and constraints", started)

    def _reset_sequences(self) -> None:
        from django.core.management.color import no_style

        statements = connection.ops.sequence_reset_sql(
            no_style(), [User, Workbook, WorkbookTag, Favorite, WorkbookDailyStat, Follow]
        )
        if statements:
            with connection.cursor() as cursor:
                for sql in statements:
                    cursor.execute(sql)


def bulk_load(**kwargs: Any) -> BulkResult:
    """Convenience wrapper: ``BulkLoader(**kwargs).run()``."""
    return BulkLoader(**kwargs).run()
