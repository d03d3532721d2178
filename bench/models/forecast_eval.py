"""The peers of `orbas models forecast-eval`: statsforecast on the exact series Orbas exported.

Usage: forecast_eval.py SERIES_CSV H — reads `unique_id,ds,y` (monthly, ds the month's first day),
holds out the last H months of every series, fits on the rest and forecasts H months with
  AutoETS(season_length=12)   statsforecast's automatic ETS (seasonal where the data allow it),
  AutoETS(season_length=3)    the same with the quarterly cycle,
  SeasonalNaive(12)           the value of the same month a year earlier,
and prints one JSON object: {"forecasts": {model: {unique_id: [H values]}}, "seconds": fit+predict time}.
The metrics are computed by Orbas, with the same code for every model.
"""

import csv
import json
import sys
import time

import numpy as np
import pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import AutoETS, SeasonalNaive


def main():
    path, h = sys.argv[1], int(sys.argv[2])
    with open(path) as f:
        rows = list(csv.DictReader(f))
    df = pd.DataFrame(rows)
    df["ds"] = pd.to_datetime(df["ds"])
    df["y"] = df["y"].astype(float)
    df = df.sort_values(["unique_id", "ds"])
    train = df.groupby("unique_id", group_keys=False).apply(lambda g: g.iloc[:-h])
    models = [AutoETS(season_length=12, alias="AutoETS"), AutoETS(season_length=3, alias="AutoETS_m3"),
              SeasonalNaive(season_length=12, alias="SeasonalNaive")]
    started = time.perf_counter()
    sf = StatsForecast(models=models, freq="MS", n_jobs=1)
    fc = sf.forecast(df=train, h=h)
    seconds = time.perf_counter() - started
    if "unique_id" not in fc.columns:
        fc = fc.reset_index()
    out = {}
    for m in ["AutoETS", "AutoETS_m3", "SeasonalNaive"]:
        out[m] = {uid: [float(v) if np.isfinite(v) else None for v in g.sort_values("ds")[m].to_numpy()]
                  for uid, g in fc.groupby("unique_id")}
    json.dump({"forecasts": out, "seconds": seconds}, sys.stdout)


if __name__ == "__main__":
    main()
