"""The quality table (newest run per config and budget, equal-seconds and equal-steps views) and its two plots."""
import json

BUDGETS = """\
Budgets are wall-clock. A `kit train` row's budget includes the command's start-up and its tail: the final zip of
`tail` images (64 by default, kept small for the bench; 10000 is what a user's run writes); the baseline's budget
counts its training loop only. s: seconds the run took. load: the machine's 1-minute load average at the run's start
and end (2 cores, shared with other jobs, so steps per second vary between rows); threads: torch threads of the run
(0: torch's default, both cores).
"""
HEADERS = {"digits": """# Quality benchmark: UCI digits, scored in a digit classifier's features

Written by `python bench/quality.py` from its measurements: the newest run of each config at each budget.
""" + BUDGETS + """\
digit-FID: n_eval generated images against all 1,797 real digits, in the classifier's 64-d features.
class bits: entropy of the classifier's predicted digits (an even spread is log2 10 = 3.32); rarest: the share of
the least drawn digit (an even spread is 10%). d: MiFID memorisation distance in the same features (copies of the
data: 0). asked-for: share of samples, asked for digit k = i mod 10, that the classifier reads as k (conditional
models). settings: what the run used, read back from its checkpoint (threads 0: torch's default).
How the CPU rows of the kit's defaults were chosen (trials with their flags, figures, load and commit):
`quality_explore.md`.
""", "photos": """# Quality benchmark: natural-photo crops, scored in a photo-crop classifier's features

Written by `python bench/quality.py --set photos` from its measurements: the newest run of each config at each budget.
The set: 4,050 crops of the three photographs scikit-learn and matplotlib ship (china.jpg, flower.jpg,
grace_hopper.jpg), 64×64, sides of 64–208 source pixels, half of them mirrored; 27 classes (photo × the cell of a
3×3 grid that holds the crop's centre), 150 each; 600 held out of the classifier's training.
""" + BUDGETS + """\
photo-FID: n_eval generated images against all 4,050 crops, in the 64-d features of a small CNN trained to tell
the 27 classes apart. class bits: entropy of its predicted classes (an even spread is log2 27 = 4.75); rarest: the share
of the least drawn class (an even spread is 3.7%). d: MiFID memorisation distance in the same features (copies: 0);
the held-out crops overlap the others in pixels (they are cut from the same three photographs), so held-out d is a
floor that a model which copies no crop can still sit near. asked-for: share of samples, asked for class
k = i mod 27, that the classifier reads as k (conditional models). settings: what the run used, read back from its
checkpoint. The reference rows show what the features see: held-out crops plain, blurred, coarsened, noised or
colour-cast against the rest, copies, noise. How the set and its classifier were chosen: `quality_explore.md`.
"""}


def classifier_of(session):
    """The classifier a session scored in: its weights' fingerprint (older sessions: its held-out accuracy)."""
    return session.get("classifier") or f"accuracy {session['accuracy']:.4f}"


def scored_alike(records):
    """(the records scored by the newest session's classifier, how many others were left out): FIDs in two
    classifiers' features do not compare."""
    if not records:
        return [], 0
    latest = classifier_of(max((r["session"] for r in records), key=lambda s: s["id"]))
    kept = [r for r in records if classifier_of(r["session"]) == latest]
    return kept, len(records) - len(kept)


def group(r):
    """A record's (config, budget, tail): its seeds are one group."""
    return r["config"], r["budget_s"], r["tail"]


def newest(records):
    """The newest record of each (config, budget, tail, seed), sorted by budget, tail, config and seed."""
    latest = {}
    for r in records:
        latest[(*group(r), r["seed"])] = r
    return [latest[k] for k in sorted(latest, key=lambda k: (k[1], k[2], k[0], k[3]))]


def means(rows):
    """{(config, budget, tail): {"seeds", "fids", "fid", "d", "bits"}}: each group's seeds and FIDs, and its scores
    averaged over them."""
    groups = {}
    for r in rows:
        groups.setdefault(group(r), []).append(r)
    return {key: {"seeds": [r["seed"] for r in runs], "fids": [r["fid"] for r in runs],
                  **{k: sum(r[k] for r in runs) / len(runs) for k in ("fid", "d", "bits")}}
            for key, runs in groups.items()}


def write_table(records, path, qset, left_out=0):
    """Markdown: the equal-seconds table, the seed means, ratios and checks, the equal-steps table, the references;
    left_out: the runs scored by other classifiers, counted in a line."""
    rows = newest(records)
    session = max((r["session"] for r in rows), key=lambda s: s["id"])
    metric = f"{qset.noun}-FID"
    lines = [HEADERS[qset.name],
             f"Machine: {session['machine']}; classifier held-out accuracy {session['accuracy']:.1%}; "
             f"n_eval {rows[0]['n_eval']}.", "",
             *([f"{left_out} earlier runs, scored by other classifiers, are left out: FIDs in different features do "
                f"not compare (they stay in `{qset.stem}.jsonl`).", ""] if left_out else []),
             "## Equal seconds", "",
             f"| config | budget | tail | seed | steps | images seen | s | {metric} | class bits | rarest | d | "
             "asked-for | load | commit | flags | settings |", "|---" * 16 + "|"]
    for r in rows:
        acc = f"{r['cgan_acc']:.1%}" if "cgan_acc" in r else ""
        rarest = f"{r['rarest']:.1%}" if "rarest" in r else ""
        lines.append(f"| {r['config']} | {duration(r['budget_s'])} | {r['tail']} | {r['seed']} | "
                     f"{r['steps']} | {r['images_seen']} | "
                     f"{r['seconds']:.0f} | {r['fid']:.1f} | {r['bits']:.2f} | {rarest} | {r['d']:.4f} | {acc} | "
                     f"{r['load'][0]:.1f}–{r['load'][1]:.1f} | {r['session']['commit']} | {r['flags']} | "
                     f"{r.get('settings', '')} |")
    for name, ref in session["references"].items():
        lines.append(f"| {name} | | | | | | | {ref['fid']:.1f} | {ref['bits']:.2f} | {ref.get('rarest', 0):.1%} | "
                     f"{ref['d']:.4f} | | | | | |")
    lines += ["", *seed_means(rows, metric), "", *ratios(rows, metric), "", *checks(rows, session["references"], qset),
              "", *equal_steps(rows, metric)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def seed_means(rows, metric):
    """Markdown table: each (config, budget, tail) averaged over its seeds, and each biggan-* and kit-biggan against
    biggan-plain."""
    groups = means(rows)
    lines = ["## Over seeds", "",
             f"Each config's mean over its seeds (each seed's {metric} in brackets). vs plain: the mean {metric} and mean "
             "d divided by biggan-plain's at the same budget and tail (FID below 1 is better; d below 1 is closer to "
             "copying); marked * where plain ran with another tail only (a 10000-image tail inside the budget trains "
             "a little less than plain's 64, so * favours plain). biggan-plain is biggan as it was before these rows "
             "chose its defaults (augment translation,color, no ADA); kit-biggan is biggan with the kit's defaults now.", "",
             f"| config | budget | tail | seeds | {metric} | d | class bits | vs plain: {metric} | d |",
             "|---" * 9 + "|"]
    for (config, budget, tail), m in groups.items():
        same = groups.get(("biggan-plain", budget, tail))
        plain = same or next((p for (c, b, _), p in groups.items() if c == "biggan-plain" and b == budget), None)
        mark = "" if same else "*"
        versus = (f"{m['fid'] / plain['fid']:.3f}{mark} | {m['d'] / plain['d']:.3f}{mark}"
                  if plain and "biggan" in config and config != "biggan-plain" else " | ")
        lines.append(f"| {config} | {duration(budget)} | {tail} | {len(m['seeds'])} | {m['fid']:.1f} "
                     f"({', '.join(f'{f:.1f}' for f in m['fids'])}) | {m['d']:.4f} | {m['bits']:.2f} | {versus} |")
    return lines


def ratios(rows, metric):
    """One line per budget and tail: each kit config's mean FID over seeds divided by the baseline's, and biggan's by
    cgan's (the baseline has no tail: every tail is set against it)."""
    groups = means(rows)
    base = {b: m["fid"] for (c, b, _), m in groups.items() if c == "baseline"}
    lines = []
    for budget, tail in sorted({(b, t) for c, b, t in groups if c != "baseline"}):
        fid = {c: m["fid"] for (c, b, t), m in groups.items() if (b, t) == (budget, tail)}
        parts = [f"{c} / baseline = {fid[c] / base[budget]:.3f}"
                 for c in ("kit-dcgan", "kit-cgan", "kit-biggan", "biggan-plain") if c in fid and budget in base]
        if "kit-biggan" in fid and "kit-cgan" in fid:
            parts.append(f"kit-biggan / kit-cgan = {fid['kit-biggan'] / fid['kit-cgan']:.3f}")
        if parts:
            lines.append(f"At {duration(budget)}, tail {tail}, {metric} ratios (means over seeds): {'; '.join(parts)}.  ")
    fid = {(c, b): m["fid"] for (c, b, t), m in groups.items() if t == 64}
    both = sorted(b for c, b in fid if c == "kit-biggan" and ("kit-cgan", b) in fid)
    if both:
        ahead = [duration(b) for b in both if fid["kit-biggan", b] < fid["kit-cgan", b]]
        lines.append(f"kit-biggan overtakes kit-cgan (a lower {metric} at equal seconds) at "
                     f"{', '.join(ahead) if ahead else 'none'} of the budgets both ran "
                     f"({', '.join(duration(b) for b in both)}).  ")
    return lines


def checks(rows, refs, qset):
    """The set's bar for each conditional row with a baseline at its budget (the baseline's mean over seeds), each item
    answered from the numbers."""
    noun, bar, asked_bar = qset.noun, qset.fid_bar, qset.asked_bar
    held = refs["ref: held-out real vs the rest"]["d"]
    base = {b: m["fid"] for (c, b, _), m in means(rows).items() if c == "baseline"}
    lines = []
    for r in rows:
        if "cgan_acc" not in r or r["budget_s"] not in base:
            continue
        ratio = r["fid"] / base[r["budget_s"]]
        asked = f"asked-for class {r['cgan_acc']:.1%}"
        if asked_bar:
            asked += f" ({'met' if r['cgan_acc'] >= asked_bar else 'NOT met'}: at least {asked_bar:.0%})"
        items = [f"{noun}-FID {ratio:.3f} of the baseline's ({'met' if ratio <= bar else 'NOT met'}: at most {bar:g})",
                 f"rarest class {r['rarest']:.1%} ({'all drawn' if r['rarest'] > 0 else 'NOT all drawn'})", asked,
                 f"d {r['d']:.4f} against held-out real {noun}s' {held:.4f} "
                 f"({'above' if r['d'] > held else 'NOT above'})"]
        lines.append(f"Check, {r['config']} at {duration(r['budget_s'])}, tail {r['tail']}, seed {r['seed']}: "
                     f"{'; '.join(items)}.  ")
    return lines


def equal_steps(rows, metric):
    """Markdown table: each config's FID at the step counts where the slowest config of each budget stopped, and
    the slowest biggan config (its regularisers cost steps).

    Every snapshot of a config's runs with one seed is a candidate; the one nearest in steps is taken for each seed and
    the cell is their mean FID, with the snapshots' steps.
    """
    curves = {}
    for r in rows:
        curves.setdefault(r["config"], {}).setdefault(r["seed"], []).extend(
            (step, fid) for _, step, fid in r["curve"])
    marks = sorted({min(r["steps"] for r in runs) for b in {r["budget_s"] for r in rows}
                    for runs in ([r for r in rows if r["budget_s"] == b],
                                 [r for r in rows if r["budget_s"] == b and "biggan" in r["config"]]) if runs})
    names = sorted(curves)
    lines = ["## Equal steps", "",
             f"{metric} of each config's snapshot nearest to the step count (the snapshot's step in brackets), the mean",
             "over seeds where there are several (the steps of each seed's snapshot); the step counts are where the",
             "config with the fewest steps stopped at each budget, and the biggan config with the fewest. Snapshots",
             "come from every run of the config above (`--points` per run).", "",
             "| steps | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for mark in marks:
        cells = []
        for name in names:
            nearest = [min(curve, key=lambda p: (abs(p[0] - mark), p[0])) for curve in curves[name].values()]
            cells.append(f"{sum(f for _, f in nearest) / len(nearest):.1f} ({'/'.join(str(s) for s, _ in nearest)})")
        lines.append(f"| {mark} | " + " | ".join(cells) + " |")
    return lines


def write_plots(records, folder, qset):
    """STEM_fid_vs_time.png and STEM_fid_vs_steps.png: FID curves of the table's runs, log scales."""
    from kit.plot import save_line_chart
    rows = newest(records)
    for axis, index, name in (("seconds", 0, "time"), ("steps", 1, "steps")):
        series = {f"{r['config']} {duration(r['budget_s'])}" + (f" tail {r['tail']}" if r["tail"] > 64 else "")
                  + (f" seed {r['seed']}" if r["seed"] else ""): ([p[index] for p in r["curve"]],
                                                                         [p[2] for p in r["curve"]]) for r in rows}
        save_line_chart(series, folder / f"{qset.stem}_fid_vs_{name}.png", xlabel=axis, ylabel=f"{qset.noun}-FID",
                        title=f"{qset.noun}-FID against {axis} of training", log_x=axis == "steps", log_y=True)


def duration(seconds):
    """120 -> '2 min', 90 -> '90 s'."""
    return f"{seconds / 60:g} min" if seconds % 60 == 0 else f"{seconds:g} s"


def read_records(path):
    """All records of a runs file (quality.jsonl, quality_photos.jsonl; [] when missing)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
