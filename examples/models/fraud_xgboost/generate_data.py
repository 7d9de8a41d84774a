#!/usr/bin/python3
"""A seeded generator of a realistic card-transactions dataset for the fraud example.

The world: cardholders with a history (home country and location, typical spend, usual hours,
account age, devices, favourite merchants, the odd trip abroad), merchants with a category, a
country and a risk score (their past chargeback rate), and 90 days of transactions. Fraud comes
in episodes against a card, in four patterns that real issuers see:

- account takeover, card not present: a burst of online purchases at electronics, digital goods
  and retail merchants, mostly from a new device, often from abroad, often at night, for more
  than the cardholder usually spends;
- card testing: a few tiny charges at digital-goods merchants in quick succession, sometimes
  followed by a large one;
- a cloned card used in person abroad: cash withdrawals and jewellery/electronics far from home;
- low and slow: a few ordinary-looking purchases (family fraud, a leaked card used carefully),
  which carries almost no signal and keeps the problem honest.

Legitimate behaviour overlaps all of it: people travel, buy a new phone, make a big purchase,
shop late, and make two purchases within minutes. A small share of legitimate transactions is
labelled fraud (disputed charges), as in real chargeback data.

Features are computed from each card's own history, in time order, the way an online feature
store would (no look-ahead). FEATURES lists them in the order the model expects; README.md
explains each. Run as a script to write the dataset as CSV:

    /usr/bin/python3 generate_data.py --out /tmp/fraud.csv

train.py imports generate() instead, so the data never needs to be stored.
"""
import argparse
import csv
import math

import numpy as np

SEED = 20261126
DAYS = 90
N_USERS = 2400

# (code, latitude, longitude, weight as a cardholders' home country)
HOME_COUNTRIES = [
    ("US", 39.8, -98.6, 0.34), ("GB", 52.4, -1.5, 0.12), ("DE", 51.2, 10.4, 0.12),
    ("FR", 46.6, 2.4, 0.10), ("ES", 40.4, -3.7, 0.07), ("IT", 42.8, 12.6, 0.07),
    ("NL", 52.1, 5.3, 0.05), ("CA", 56.1, -106.3, 0.07), ("AU", -25.3, 133.8, 0.03),
    ("JP", 36.2, 138.3, 0.03),
]
# Countries that card fraud is often run from or cashed out in (none is anyone's home here).
FRAUD_COUNTRIES = [
    ("NG", 9.1, 8.7), ("RU", 55.8, 37.6), ("BR", -14.2, -51.9), ("RO", 45.9, 25.0),
    ("ID", -0.8, 113.9), ("VN", 14.1, 108.3), ("UA", 48.4, 31.2), ("TH", 15.9, 101.0),
]
COUNTRY_LOC = {c[0]: (c[1], c[2]) for c in HOME_COUNTRIES}
COUNTRY_LOC.update({c[0]: (c[1], c[2]) for c in FRAUD_COUNTRIES})

# name, share of legitimate spend, amount factor vs the cardholder's typical amount,
# share of merchants that are online (card not present), base risk (chargeback rate scale)
CATEGORIES = [
    ("grocery", 0.24, 0.8, 0.0, 0.02),
    ("restaurant", 0.18, 0.7, 0.0, 0.03),
    ("fuel", 0.10, 0.9, 0.0, 0.03),
    ("pharmacy", 0.06, 0.6, 0.0, 0.02),
    ("online_retail", 0.16, 1.3, 1.0, 0.08),
    ("electronics", 0.05, 3.0, 0.5, 0.14),
    ("travel", 0.04, 4.0, 0.8, 0.10),
    ("digital_goods", 0.07, 0.4, 1.0, 0.18),
    ("jewelry", 0.02, 5.0, 0.0, 0.16),
    ("cash_withdrawal", 0.08, 1.6, 0.0, 0.08),
]
CAT_NAMES = [c[0] for c in CATEGORIES]
CAT = {c[0]: i for i, c in enumerate(CATEGORIES)}

MINUTES_SINCE_CAP = 30 * 24 * 60.0  # 30 days

# The model's input: one FP32 vector per transaction, in this order.
FEATURES = [
    "amount",
    "log_amount",
    "amount_over_user_mean",
    "hour",
    "is_night",
    "hour_deviation",
    "foreign_country",
    "distance_km",
    "is_online",
    "merchant_risk",
    "new_merchant",
] + [f"cat_{c}" for c in CAT_NAMES] + [
    "txn_count_1h",
    "txn_count_24h",
    "minutes_since_last_txn",
    "account_age_days",
    "new_device",
]


def haversine_km(a, b):
    lat1, lon1 = math.radians(a[0]), math.radians(a[1])
    lat2, lon2 = math.radians(b[0]), math.radians(b[1])
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


def jitter(rng, loc, deg):
    return (float(np.clip(loc[0] + rng.normal(0, deg), -89, 89)),
            float((loc[1] + rng.normal(0, deg) + 180) % 360 - 180))


def make_merchants(rng):
    """Merchants in every country: in-person ones where they stand, online ones registered in a
    country but reachable from anywhere. Returns a list of dicts."""
    merchants = []
    countries = [(c[0], c[3]) for c in HOME_COUNTRIES] + [(c[0], 0.02) for c in FRAUD_COUNTRIES]
    shares = np.array([c[1] for c in CATEGORIES])
    shares /= shares.sum()
    for code, weight in countries:
        n = max(len(CATEGORIES), int(weight * 1500))
        cats = list(range(len(CATEGORIES))) + list(rng.choice(len(CATEGORIES), n - len(CATEGORIES),
                                                               p=shares))
        for ci in cats:
            name, _, _, online_share, base_risk = CATEGORIES[ci]
            risk = base_risk + rng.beta(2, 20) * 0.5
            if rng.random() < 0.03:  # a lax or compromised merchant
                risk += 0.4
            merchants.append({
                "id": len(merchants), "cat": ci, "country": code,
                "online": bool(rng.random() < online_share),
                "risk": float(min(1.0, risk)),
                "loc": jitter(rng, COUNTRY_LOC[code], 3.0),
            })
    return merchants


def make_users(rng, merchants):
    by_country = {}
    for m in merchants:
        by_country.setdefault(m["country"], []).append(m)
    online = [m for m in merchants if m["online"] and m["country"] in
              {c[0] for c in HOME_COUNTRIES}]
    weights = np.array([c[3] for c in HOME_COUNTRIES])
    weights /= weights.sum()
    shares = np.array([c[1] for c in CATEGORIES])
    users = []
    for uid in range(N_USERS):
        home = HOME_COUNTRIES[rng.choice(len(HOME_COUNTRIES), p=weights)][0]
        local = [m for m in by_country[home]]
        # favourite merchants, weighted towards the categories people spend on most
        fav = []
        for _ in range(int(rng.integers(6, 16))):
            ci = rng.choice(len(CATEGORIES), p=shares / shares.sum())
            pool = [m for m in (online if CATEGORIES[ci][3] >= 1.0 else local) if m["cat"] == ci]
            if pool:
                fav.append(pool[int(rng.integers(len(pool)))]["id"])
        age = float(np.clip(np.exp(rng.normal(6.3, 1.1)), 1, 6000))
        if rng.random() < 0.06:  # recently opened accounts
            age = float(rng.uniform(1, 45))
        users.append({
            "id": uid, "home": home, "loc": jitter(rng, COUNTRY_LOC[home], 2.0),
            "mu": float(rng.normal(math.log(38), 0.55)), "sigma": float(rng.uniform(0.45, 0.9)),
            "peak": float(rng.normal(14.5, 3.0)) % 24, "spread": float(rng.uniform(2.0, 4.0)),
            "rate": float(np.exp(rng.normal(math.log(0.22), 0.6))),
            "age0": age, "devices": [uid * 100 + k for k in range(int(rng.integers(1, 3)))],
            "fav": fav, "fav_w": rng.dirichlet(np.ones(len(fav)) * 0.8),
        })
    return users, by_country, online


def legit_transactions(rng, u, merchants, by_country, online):
    """A cardholder's own transactions over the window (possibly including a trip abroad)."""
    out = []
    trip = None
    if rng.random() < 0.18:
        dest = HOME_COUNTRIES[int(rng.integers(len(HOME_COUNTRIES)))][0]
        if dest != u["home"]:
            start = float(rng.uniform(0, DAYS - 10))
            trip = (dest, start * 86400, (start + rng.uniform(3, 10)) * 86400)
    n = int(rng.poisson(u["rate"] * DAYS))
    for _ in range(n):
        day = int(rng.integers(DAYS))
        hour = (u["peak"] + rng.normal(0, u["spread"])) % 24
        t = day * 86400 + hour * 3600
        out.append(legit_one(rng, u, merchants, by_country, online, t, trip))
        if rng.random() < 0.06:  # a second purchase soon after (lunch, then the pharmacy)
            t2 = t + rng.uniform(3, 90) * 60
            out.append(legit_one(rng, u, merchants, by_country, online, t2, trip))
    return out


def legit_one(rng, u, merchants, by_country, online, t, trip):
    abroad = trip is not None and trip[1] <= t < trip[2]
    if abroad or rng.random() < 0.12 or not u["fav"]:
        # a merchant the cardholder has not used (new shop, or abroad)
        country = trip[0] if abroad else u["home"]
        ci = int(rng.choice(len(CATEGORIES), p=np.array([c[1] for c in CATEGORIES])))
        if CATEGORIES[ci][3] >= 1.0:
            pool = [m for m in online if m["cat"] == ci]
        else:
            pool = [m for m in by_country[country] if m["cat"] == ci] or by_country[country]
        m = pool[int(rng.integers(len(pool)))]
    else:
        m = merchants[u["fav"][int(rng.choice(len(u["fav"]), p=u["fav_w"]))]]
    factor = CATEGORIES[m["cat"]][2]
    amount = math.exp(rng.normal(u["mu"] + math.log(factor), u["sigma"]))
    if rng.random() < 0.012:  # a big purchase now and then
        amount *= math.exp(rng.normal(1.6, 0.5))
    if m["cat"] == CAT["cash_withdrawal"]:
        amount = max(20.0, round(amount / 20) * 20)
    here = trip[0] if abroad else u["home"]
    if m["online"]:
        device = u["devices"][int(rng.integers(len(u["devices"])))]
        if rng.random() < 0.004:  # a new phone or laptop
            device = u["id"] * 100 + 50 + int(rng.integers(40))
        country, loc = here, jitter(rng, COUNTRY_LOC[here] if abroad else u["loc"], 0.5)
    else:
        device, country, loc = None, m["country"], m["loc"]
    return {"t": t, "m": m, "amount": amount, "device": device, "country": country, "loc": loc,
            "fraud": int(rng.random() < 0.0008)}  # disputed, not really fraud


def fraud_episode(rng, u, merchants, by_country):
    """A burst of fraudulent transactions against one card."""
    out = []
    kind = rng.choice(["ato", "testing", "cloned", "slow"], p=[0.5, 0.2, 0.2, 0.1])
    t = float(rng.uniform(3, DAYS - 1)) * 86400
    night = rng.random() < (0.55 if kind in ("ato", "testing") else 0.25)
    hour = rng.uniform(0, 5.5) if night else rng.uniform(6, 24)
    t = math.floor(t / 86400) * 86400 + hour * 3600
    abroad = rng.random() < 0.6
    fcountry = FRAUD_COUNTRIES[int(rng.integers(len(FRAUD_COUNTRIES)))][0]
    ip_country = fcountry if abroad else u["home"]
    ip_loc = jitter(rng, COUNTRY_LOC[ip_country], 4.0)
    new_dev = rng.random() < 0.88
    dev = u["id"] * 100 + 90 + int(rng.integers(10)) if new_dev else u["devices"][0]

    def pick(pool):
        w = np.array([0.05 + m["risk"] for m in pool])
        return pool[int(rng.choice(len(pool), p=w / w.sum()))]

    online_cats = {CAT["electronics"], CAT["digital_goods"], CAT["online_retail"], CAT["travel"]}
    online_pool = [m for m in merchants if m["online"] and m["cat"] in online_cats]
    digital = [m for m in merchants if m["online"] and m["cat"] == CAT["digital_goods"]]

    def cnp(m, amount, ts):
        out.append({"t": ts, "m": m, "amount": amount, "device": dev, "country": ip_country,
                    "loc": ip_loc, "fraud": 1})

    if kind == "ato":
        for _ in range(int(rng.integers(2, 9))):
            m = pick(online_pool)
            cnp(m, math.exp(rng.normal(u["mu"] + math.log(CATEGORIES[m["cat"]][2]) + 0.9, 0.7)), t)
            t += rng.exponential(8 * 60)
    elif kind == "testing":
        for _ in range(int(rng.integers(2, 7))):
            cnp(pick(digital), float(rng.uniform(0.5, 5.0)), t)
            t += rng.exponential(3 * 60)
        if rng.random() < 0.6:
            m = pick(online_pool)
            cnp(m, math.exp(rng.normal(u["mu"] + math.log(CATEGORIES[m["cat"]][2]) + 1.0, 0.6)), t)
    elif kind == "cloned":
        pool = [m for m in by_country[fcountry if abroad else u["home"]] if not m["online"] and
                m["cat"] in (CAT["cash_withdrawal"], CAT["jewelry"], CAT["electronics"],
                             CAT["fuel"])]
        for _ in range(int(rng.integers(1, 6))):
            m = pick(pool)
            if m["cat"] == CAT["cash_withdrawal"]:
                amount = float(20 * rng.integers(5, 41))
            else:
                amount = math.exp(rng.normal(u["mu"] + math.log(CATEGORIES[m["cat"]][2]) + 0.6,
                                             0.6))
            out.append({"t": t, "m": m, "amount": amount, "device": None,
                        "country": m["country"], "loc": m["loc"], "fraud": 1})
            t += rng.exponential(25 * 60)
    else:  # low and slow: ordinary merchants, ordinary amounts, spread over days
        dev = u["devices"][0] if rng.random() < 0.7 else dev
        ip_country, ip_loc = u["home"], jitter(rng, u["loc"], 0.5)
        pool = [m for m in merchants if m["online"] and m["cat"] == CAT["online_retail"]]
        for _ in range(int(rng.integers(1, 4))):
            cnp(pick(pool), math.exp(rng.normal(u["mu"] + 0.4, u["sigma"])), t)
            t += rng.uniform(0.3, 3) * 86400
    return [x for x in out if x["t"] < DAYS * 86400]


def features_for_user(rng, u, txns):
    """Feature rows for one card's transactions, in time order, from its own history only."""
    rows, labels, times = [], [], []
    # The history before the window, as a feature store would hold it.
    n_prev = int(rng.integers(8, 30))
    prior = [math.exp(rng.normal(u["mu"], u["sigma"])) for _ in range(n_prev)]
    amt_sum, amt_n = sum(prior), n_prev
    hours = [(u["peak"] + rng.normal(0, u["spread"])) % 24 for _ in range(n_prev)]
    hs = sum(math.sin(h / 24 * 2 * math.pi) for h in hours)
    hc = sum(math.cos(h / 24 * 2 * math.pi) for h in hours)
    seen_m = set(u["fav"][: max(1, len(u["fav"]) * 2 // 3)])
    dev_first = {d: -1e9 for d in u["devices"]}  # device -> first time seen on this card
    last_t = -rng.exponential(86400 / max(u["rate"], 0.02))
    recent = []  # timestamps within the last 24 h
    for x in sorted(txns, key=lambda r: r["t"]):
        t, m, amount = x["t"], x["m"], round(max(0.5, x["amount"]), 2)
        hour = (t % 86400) / 3600.0
        recent = [r for r in recent if t - r <= 86400]
        mean = (amt_sum + 3 * 35.0) / (amt_n + 3)
        usual = (math.atan2(hs, hc) / (2 * math.pi) * 24) % 24
        dev_h = abs(hour - usual)
        f = {
            "amount": amount,
            "log_amount": math.log1p(amount),
            "amount_over_user_mean": amount / mean,
            "hour": math.floor(hour),
            "is_night": float(hour < 6),
            "hour_deviation": min(dev_h, 24 - dev_h),
            "foreign_country": float(x["country"] != u["home"]),
            "distance_km": haversine_km(u["loc"], x["loc"]),
            "is_online": float(m["online"]),
            "merchant_risk": m["risk"],
            "new_merchant": float(m["id"] not in seen_m),
            "txn_count_1h": float(sum(1 for r in recent if t - r <= 3600)),
            "txn_count_24h": float(len(recent)),
            "minutes_since_last_txn": min(MINUTES_SINCE_CAP, (t - last_t) / 60.0),
            "account_age_days": u["age0"] + t / 86400.0,
            "new_device": float(x["device"] is not None and
                                t - dev_first.get(x["device"], t) <= 86400),
        }
        for i, c in enumerate(CAT_NAMES):
            f[f"cat_{c}"] = float(m["cat"] == i)
        rows.append([f[k] for k in FEATURES])
        labels.append(x["fraud"])
        times.append(t)
        amt_sum += amount
        amt_n += 1
        hs += math.sin(hour / 24 * 2 * math.pi)
        hc += math.cos(hour / 24 * 2 * math.pi)
        seen_m.add(m["id"])
        if x["device"] is not None:
            dev_first.setdefault(x["device"], t)
        recent.append(t)
        last_t = t
    return rows, labels, times


def generate(seed=SEED):
    """Returns (X float32 [n, len(FEATURES)], y int8 [n], t float64 [n] seconds since the start,
    user int32 [n]), sorted by time."""
    rng = np.random.default_rng(seed)
    merchants = make_merchants(rng)
    users, by_country, online = make_users(rng, merchants)
    X, y, T, U = [], [], [], []
    for u in users:
        txns = legit_transactions(rng, u, merchants, by_country, online)
        # new accounts are targeted more (weak identity checks, mule accounts)
        p = 0.07 * (3.0 if u["age0"] < 60 else 1.0)
        if rng.random() < p:
            txns += fraud_episode(rng, u, merchants, by_country)
        rows, labels, times = features_for_user(rng, u, txns)
        X += rows
        y += labels
        T += times
        U += [u["id"]] * len(rows)
    order = np.argsort(np.array(T), kind="stable")
    X = np.asarray(X, dtype=np.float32)[order]
    y = np.asarray(y, dtype=np.int8)[order]
    return X, y, np.asarray(T)[order], np.asarray(U, dtype=np.int32)[order]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="CSV file to write")
    ap.add_argument("--seed", type=int, default=SEED)
    a = ap.parse_args()
    X, y, T, U = generate(a.seed)
    with open(a.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time_s", "user"] + FEATURES + ["is_fraud"])
        for i in range(len(y)):
            w.writerow([f"{T[i]:.0f}", int(U[i])] + [f"{v:.6g}" for v in X[i]] + [int(y[i])])
    print(f"{a.out}: {len(y)} rows, {len(FEATURES)} features, fraud rate {y.mean():.4f}")


if __name__ == "__main__":
    main()
