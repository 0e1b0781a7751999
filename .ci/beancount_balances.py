#!/usr/bin/env python3
"""Checks a `hongxin export beancount` ledger against hongxin's own balances.

Usage: beancount_balances.py LEDGER.beancount BALANCES.csv

Loads the ledger with Beancount (any error fails), sums every account's postings, turns the
sum to hongxin's normal side (Assets and Expenses as they are; Liabilities, Equity and Income
negated) and compares it, to the fen, with the `balance` column of the CSV that
`hongxin export beancount --balances` wrote. Any difference, or an account on one side only,
fails with exit status 1.
"""

import csv
import sys
from collections import defaultdict
from decimal import Decimal

from beancount import loader
from beancount.core import data

DEBIT_NORMAL = ("Assets", "Expenses")


def main(ledger_path, balances_path):
    entries, errors, options = loader.load_file(ledger_path)
    for e in errors:
        print(f"beancount: {e.source.get('filename')}:{e.source.get('lineno')}: {e.message}")
    if errors:
        return 1

    sums = defaultdict(Decimal)
    opened = set()
    transactions = 0
    for entry in entries:
        if isinstance(entry, data.Open):
            opened.add(entry.account)
        elif isinstance(entry, data.Transaction):
            transactions += 1
            for p in entry.postings:
                if p.units.currency != "CNY":
                    print(f"{p.account}: posting in {p.units.currency}, not CNY")
                    return 1
                sums[p.account] += p.units.number

    hongxin = {}
    with open(balances_path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            hongxin[row["account"]] = Decimal(row["balance"])

    problems = []
    for account in sorted(opened | set(sums) | set(hongxin)):
        if account not in hongxin:
            problems.append(f"{account}: in the ledger but not in hongxin's balances")
            continue
        if account not in opened:
            problems.append(f"{account}: in hongxin's balances but never opened in the ledger")
            continue
        sign = 1 if account.split(":", 1)[0] in DEBIT_NORMAL else -1
        beancount_balance = sign * sums.get(account, Decimal(0))
        if beancount_balance != hongxin[account]:
            problems.append(
                f"{account}: beancount {beancount_balance} but hongxin {hongxin[account]}"
            )
    for p in problems[:50]:
        print(p)
    if problems:
        print(f"{len(problems)} of {len(hongxin)} accounts differ")
        return 1
    print(
        f"ok: {transactions} transactions; all {len(hongxin)} account balances match hongxin's"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
