"""The demo's vocabulary and the helpers both loaders share.

Titles, descriptions, tags and bios are built from a combinatorial BI vocabulary (domains such as SaaS revenue,
churn or supply chain, each with its own metrics, dimensions, sources, teams, goals and method notes, plus chart
types, time grains and adjectives). A description stays within its title's domain, so a search for "churn"
finds churn workbooks whose text talks about churn. Shared with the loaders: deterministic embed links and the
tags by slug.
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from accounts.demo import ROLES, TOPICS
from accounts.models import ci
from workbooks.models import (
    Tag,
)

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

STATS_DAYS = 30  # days of statistics both loaders write

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
