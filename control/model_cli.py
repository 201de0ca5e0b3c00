"""omsctl model {dataset,train,eval}: the fill-probability model's tools
(docs/fill-model.md)."""
from __future__ import annotations

import json
from pathlib import Path


def cmd_dataset(args) -> int:
    from control import fill_dataset, fill_journal
    paths = [Path(p) for p in args.inputs]
    journals = [fill_journal.is_journal(p) for p in paths]
    if any(journals) and not all(journals):
        raise ValueError("give journals or session order files, not both")
    venues = args.venues.upper().split(",") if args.venues else None
    build = fill_journal.build if all(journals) else fill_dataset.build
    ds, counts = build(paths, horizon_ms=args.horizon_ms, venues=venues)
    ds.save(args.out)
    print(f"{counts['rows']} rows from {counts['orders']} orders -> {args.out} "
          f"(skipped: {counts['empty_side']} with an empty book side, "
          f"{counts['unknown_venue']} at unknown venues)")
    return 0


def _datasets(paths: list[str]):
    import numpy as np

    from control.fill_dataset import Dataset
    parts = [Dataset.load(p) for p in paths]
    d = parts[0]
    for o in parts[1:]:
        if o.venues != d.venues or o.horizon_ms != d.horizon_ms:
            raise ValueError("datasets with different venues or horizons cannot be joined")
        d = Dataset(*(np.concatenate([getattr(d, f), getattr(o, f)])
                      for f in ("x", "any_fill", "full_fill", "p_true", "session", "t_ns")),
                    d.venues, d.horizon_ms)
    return d


def cmd_train(args) -> int:
    from control import fill_artefact, fill_train
    ds = _datasets(args.data)
    doc, rep = fill_train.train(ds, label=args.label, c=args.l2_c, seed=args.seed)
    fill_artefact.save(doc, args.out)
    print(f"model {doc['model_id']} ({rep['rows']} rows, {rep['cells']} cells, "
          f"fit {rep['fit_s']} s, fixed point within {rep['fixed_point_max_err']:.1e} "
          f"of the float model) -> {args.out}")
    return 0


def cmd_eval(args) -> int:
    from control import fill_artefact, fill_eval, fill_train
    doc = fill_artefact.load(args.model)
    train, test = _datasets(args.train), _datasets(args.data)
    if test.venues != doc["venues"]:
        raise ValueError(f"the data's venues {test.venues} are not the model's {doc['venues']}")
    boosted = fill_train.boosted_model(train, doc["label"], args.seed) if args.boosted else None
    res = fill_eval.evaluate(doc, train, test, label=doc["label"], boosted=boosted)
    for line in fill_eval.report_lines(res):
        print(line)
    if args.plot:
        fill_eval.calibration_png(res, args.plot)
        print(f"calibration plot -> {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in res.items()
                                               if not k.startswith("_")}, indent=1) + "\n")
    return 0


def add_subparser(sub) -> None:
    m = sub.add_parser("model", help="the fill-probability model: dataset, train, eval")
    msub = m.add_subparsers(dest="model_cmd", required=True)
    d = msub.add_parser("dataset", help="journals (or session order files) -> a dataset "
                                        "(.npz), one row per routed child order, features "
                                        "known at decision time")
    d.add_argument("inputs", nargs="+", metavar="JOURNAL",
                   help="the appliance's journals (ROUTE records: routing.model or "
                        "journal.route_records), or sessionNN.orders.jsonl (sessionNN."
                        "truth.jsonl beside it is joined)")
    d.add_argument("-o", "--out", required=True)
    d.add_argument("--horizon-ms", type=int, default=1000,
                   help="a fill within this time of the decision (a journal) or of the "
                        "venue's entry (a session file) is a fill (default 1000)")
    d.add_argument("--venues", metavar="NAMES",
                   help="comma-separated venue names, the venue column's order (default: "
                        "every venue's name, sorted)")
    d.set_defaults(func=cmd_dataset)
    t = msub.add_parser("train", help="fit the logistic tables; write the fixed-point artefact")
    t.add_argument("data", nargs="+", help="training dataset(s) (.npz)")
    t.add_argument("-o", "--out", required=True, help="the model file (JSON)")
    t.add_argument("--label", choices=("any_fill", "full_fill"), default="any_fill")
    t.add_argument("--l2-c", type=float, default=0.3, help="inverse L2 strength (default 0.3)")
    t.add_argument("--seed", type=int, default=1)
    t.set_defaults(func=cmd_train)
    e = msub.add_parser("eval", help="score a model on held-out data against the baselines")
    e.add_argument("model")
    e.add_argument("--train", nargs="+", required=True,
                   help="the training dataset(s): the baselines are estimated on them")
    e.add_argument("--data", nargs="+", required=True, help="held-out dataset(s)")
    e.add_argument("--plot", help="calibration plot (PNG)")
    e.add_argument("--json", help="the figures as JSON")
    e.add_argument("--boosted", action="store_true",
                   help="also fit and score the HistGradientBoosting comparison model")
    e.add_argument("--seed", type=int, default=1)
    e.set_defaults(func=cmd_eval)
