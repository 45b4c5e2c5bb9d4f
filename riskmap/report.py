"""The static warning report: a map of the levels (PNG and PDF) and a table per township.

For the report to headquarters: villages filled by warning colour with a legend, scale bar, north arrow,
title, issuer (发布单位) and time (Beijing), and beside it a table per township — villages per level, people
and households concerned (villages at level ≥ 1), messages sent, delivered and acknowledged.  Chinese text
needs a CJK font (Noto Sans CJK from Debian's ``fonts-noto-cjk``, or another listed in
:data:`CJK_FAMILIES`); without one :func:`find_cjk_font` raises a clear error instead of drawing boxes.

Examples
--------
>>> import pandas as pd
>>> from riskmap.maps.example import example_region
>>> region = example_region()
>>> levels = pd.DataFrame({"village_code": region.villages["code"], "level": [3, 0]})
>>> table = township_table(region, levels)
>>> table[["township", "orange", "villages_warned", "people", "households"]].to_dict("records")[0]
{'township': '城关镇', 'orange': 1, 'villages_warned': 1, 'people': 1200, 'households': 400}
>>> nice_length(30_000.0)
5000.0
"""

from __future__ import annotations

import math
import os
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskmap.errors import DataWarning, InputError, RiskmapIOError
from riskmap.levels import LEVELS, Level
from riskmap.region import Region

CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
                "Noto Serif CJK SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Microsoft YaHei",
                "SimHei", "PingFang SC")
"""Font families tried for Chinese text, in order."""

TABLE_COLUMNS = {"township": "乡镇\nTownship", "red": "红\nⅠ", "orange": "橙\nⅡ", "yellow": "黄\nⅢ",
                 "blue": "蓝\nⅣ", "people": "涉及人口\nPeople", "households": "户数\nHouseholds",
                 "sent": "已发\nSent", "delivered": "送达\nDelivered", "acknowledged": "确认\nAck."}
_CJK_FILE_KEYS = ("notosanscjk", "notoserifcjk", "sourcehansans", "wqy", "msyh", "simhei", "notosanssc")
SENT_STATUSES = ("sent", "delivered")
"""Outbox statuses that count as sent (handed to the gateway)."""


def find_cjk_font() -> str:
    """The family name of an installed font that covers Chinese.

    Raises
    ------
    RiskmapIOError
        When none of :data:`CJK_FAMILIES` is installed (install Debian's ``fonts-noto-cjk``).
    """
    from matplotlib import font_manager

    def lookup() -> str | None:
        installed = {f.name for f in font_manager.fontManager.ttflist}
        return next((family for family in CJK_FAMILIES if family in installed), None)

    family = lookup()
    if family is None:  # matplotlib's font cache may predate the font's installation: scan the disk once
        for path in font_manager.findSystemFonts():
            if any(key in Path(path).name.lower() for key in _CJK_FILE_KEYS):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        family = lookup()
    if family is not None:
        return family
    raise RiskmapIOError(
        "report: no font with Chinese glyphs found (looked for " + ", ".join(CJK_FAMILIES[:4]) + " …); "
        "install one, e.g. `apt-get install fonts-noto-cjk`"
    )


def _township_names(villages: pd.DataFrame) -> pd.Series:
    codes = villages["code"].astype(str)
    if "township" in villages.columns:
        names = villages["township"].astype("string")
        return names.fillna(codes.str[:9]).astype(str)
    return codes.str[:9]


def township_table(region: Region, levels: pd.DataFrame,
                   messages: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per township: villages per level, people and households at level ≥ 1, messages sent/delivered/acked.

    Parameters
    ----------
    region, levels
        The region and one row per village (``village_code``, ``level``); missing villages count as level 0.
    messages
        Optional, one row per message (the store's outbox): ``village_code``, ``status`` (``sent`` and
        ``delivered`` count as sent, ``delivered`` as delivered) and optional boolean ``acknowledged``.
        Without it the message columns are empty (NaN, shown as "—").

    Returns
    -------
    pandas.DataFrame
        Columns ``township, red, orange, yellow, blue, none, villages_warned, people, households, sent,
        delivered, acknowledged``; townships with the most severe warnings first, then a ``合计 Total`` row.
    """
    for col in ("village_code", "level"):
        if col not in levels.columns:
            raise InputError(f"levels: missing column {col!r}")
    villages = region.villages
    codes = villages["code"].astype(str)
    lv = levels.assign(village_code=levels["village_code"].astype(str)).set_index("village_code")["level"]
    if lv.index.has_duplicates:
        raise InputError(f"levels: village_code {lv.index[lv.index.duplicated()][0]} appears more than once")
    level = codes.map(lv).fillna(0).astype(int).to_numpy()
    frame = pd.DataFrame({
        "township": _township_names(villages).to_numpy(), "code": codes.to_numpy(), "level": level,
        "population": pd.to_numeric(villages["population"], errors="coerce").fillna(0).to_numpy(),
        "households": pd.to_numeric(villages["households"], errors="coerce").fillna(0).to_numpy(),
    })
    warned = frame["level"] > 0
    rows = frame.groupby("township", sort=False)
    table = pd.DataFrame({lv_.color: rows["level"].apply(lambda s, v=int(lv_): int((s == v).sum()))
                          for lv_ in sorted(Level, reverse=True)})
    table["villages_warned"] = rows["level"].apply(lambda s: int((s > 0).sum()))
    table["people"] = frame[warned].groupby("township")["population"].sum().reindex(table.index).fillna(0)
    table["households"] = frame[warned].groupby("township")["households"].sum().reindex(table.index).fillna(0)
    table[["people", "households"]] = table[["people", "households"]].astype(int)
    for col in ("sent", "delivered", "acknowledged"):
        table[col] = np.nan
    if messages is not None and len(messages):
        if "village_code" not in messages.columns or "status" not in messages.columns:
            raise InputError("messages: need columns 'village_code' and 'status' (the outbox)")
        town_of = dict(zip(frame["code"], frame["township"], strict=True))
        msg = messages.assign(township=messages["village_code"].astype(str).map(town_of))
        if msg["township"].isna().any():
            warnings.warn(f"messages: {int(msg['township'].isna().sum())} messages name no village of the "
                          "region; not counted", DataWarning, stacklevel=2)
            msg = msg.dropna(subset=["township"])
        status = msg["status"].astype(str).str.lower()

        def per_township(flags: pd.Series) -> pd.Series:
            return flags.astype(bool).groupby(msg["township"]).sum().reindex(table.index).fillna(0)

        table["sent"] = per_township(status.isin(SENT_STATUSES))
        table["delivered"] = per_township(status == "delivered")
        if "acknowledged" in msg.columns:
            table["acknowledged"] = per_township(msg["acknowledged"].fillna(False))
    table = table.sort_values(["red", "orange", "yellow", "blue", "people"], ascending=False, kind="stable")
    table = table.reset_index().rename(columns={"index": "township"})
    total = table.drop(columns="township").sum(numeric_only=True, min_count=1).astype(object)
    total["township"] = "合计 Total"
    return pd.concat([table, total.to_frame().T], ignore_index=True)[
        ["township", "red", "orange", "yellow", "blue", "none", "villages_warned", "people", "households",
         "sent", "delivered", "acknowledged"]]


def nice_length(extent_m: float) -> float:
    """A round scale-bar length (1, 2 or 5 × 10ⁿ m), the largest not above a fifth of ``extent_m``."""
    target = max(extent_m / 5.0, 1.0)
    power = 10 ** math.floor(math.log10(target))
    return float(max(m * power for m in (1, 2, 5) if m * power <= target))


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, int | float | np.integer | np.floating):
        return f"{int(value):,}"
    return str(value)


def report_figure(region: Region, levels: pd.DataFrame, *, title: str, issuer: str,
                  run_time: datetime | pd.Timestamp | str, tz: str = "Asia/Shanghai",
                  messages: pd.DataFrame | None = None, max_rows: int = 24):
    """The report page (A4 landscape): map with legend, scale bar and north arrow; township table.

    Returns a :class:`matplotlib.figure.Figure` (Agg, not shown); write it with :func:`write_report`.
    Townships beyond ``max_rows`` are summarised in one line (the full table is :func:`township_table`).
    """
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    from riskmap.maps.legend import FILL_OPACITY, level_label
    from riskmap.maps.warning_map import auto_simplify_m, local_time_label

    family = find_cjk_font()
    stamp = local_time_label(run_time, tz)
    table = township_table(region, levels, messages)
    villages = region.villages
    tol = auto_simplify_m(villages)
    geoms = villages.geometry.simplify(tol, preserve_topology=True) if tol else villages.geometry
    codes = villages["code"].astype(str)
    lv = levels.assign(village_code=levels["village_code"].astype(str)).set_index("village_code")["level"]
    level = codes.map(lv).fillna(0).astype(int).to_numpy()

    rc: dict[str, Any] = {"font.family": [family], "axes.unicode_minus": False, "pdf.fonttype": 3,
                          "text.parse_math": False}
    with matplotlib.rc_context(rc):  # type: ignore[arg-type]
        fig = Figure(figsize=(11.69, 8.27))
        fig.text(0.02, 0.965, title, fontsize=17, weight="bold", va="top")
        fig.text(0.02, 0.925, f"发布单位 Issuer: {issuer}    运行时间 Run time: {stamp}", fontsize=10,
                 va="top")
        ax = fig.add_axes((0.02, 0.17, 0.50, 0.72))
        ax.set_axis_off()
        ax.set_aspect("equal", adjustable="datalim")
        order = np.argsort(level, kind="stable")
        gdf = villages.set_geometry(geoms).iloc[order]
        colors = [(*_rgb(Level(v).hex), FILL_OPACITY[Level(v)]) for v in level[order]]
        gdf.plot(ax=ax, color=colors, edgecolor="#777777", linewidth=0.3 if len(gdf) > 2000 else 0.6)
        if len(region.rivers):
            region.rivers.plot(ax=ax, color="#2c7fb8", linewidth=0.8)
        xmin, ymin, xmax, ymax = villages.total_bounds
        pad = 0.04 * max(xmax - xmin, ymax - ymin)
        ax.margins(0.03)
        # scale bar (the working CRS is metric) and north arrow
        length = nice_length(xmax - xmin)
        x0, y0 = xmin, ymin - pad * 0.6
        height = pad * 0.25
        for k in range(4):
            ax.add_patch(Rectangle((x0 + k * length / 4, y0), length / 4, height,
                                   facecolor="black" if k % 2 == 0 else "white", edgecolor="black", lw=0.6))
        label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
        ax.text(x0 + length, y0 - height * 0.6, label, ha="center", va="top", fontsize=8)
        ax.text(x0, y0 - height * 0.6, "0", ha="center", va="top", fontsize=8)
        ax.annotate("N 北", xy=(0.96, 0.99), xytext=(0.96, 0.88), xycoords="axes fraction", ha="center",
                    va="center", fontsize=10, weight="bold",
                    arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 1.5})
        counts = {int(k): int(v) for k, v in pd.Series(level).value_counts().items()}
        handles = [Patch(facecolor=(*_rgb(lv_.hex), max(FILL_OPACITY[lv_], 0.0)), edgecolor="#555555",
                         label=f"{level_label(lv_)}: {counts.get(int(lv_), 0)}")
                   for lv_ in sorted(Level, reverse=True)]
        fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.02, 0.01), ncol=2, fontsize=8,
                   title="预警等级 Warning level", title_fontsize=9, frameon=False)
        _draw_table(fig, table, max_rows)
    return fig


def _rgb(hex_color: str) -> tuple[float, float, float]:
    return tuple(int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def _draw_table(fig, table: pd.DataFrame, max_rows: int) -> None:
    body, total = table.iloc[:-1], table.iloc[-1:]
    shown = body[body["villages_warned"] > 0]
    if len(shown) > max_rows:
        rest = shown.iloc[max_rows - 1:]
        extra = rest.drop(columns="township").sum(numeric_only=True, min_count=1).astype(object)
        extra["township"] = f"其余 {len(rest)} 个乡镇 others"
        shown = pd.concat([shown.iloc[:max_rows - 1], extra.to_frame().T], ignore_index=True)
    shown = pd.concat([shown, total], ignore_index=True)
    cols = list(TABLE_COLUMNS)
    cells = [[_fmt(row[c]) for c in cols] for _, row in shown.iterrows()]
    tax = fig.add_axes((0.54, 0.05, 0.44, 0.80))
    tax.set_axis_off()
    tax.set_title("分乡镇统计 By township (预警村数 villages warned)", fontsize=11, loc="left")
    if not len(cells):
        return
    tab = tax.table(cellText=cells, colLabels=[TABLE_COLUMNS[c] for c in cols], loc="upper center",
                    cellLoc="center", colLoc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(7)
    tab.auto_set_column_width(list(range(len(cols))))
    for (r, c), cell in tab.get_celld().items():
        if r == 0:
            cell.set_facecolor("#e8e8e8")
            cell.set_height(cell.get_height() * 2)
        elif 1 <= c <= 4 and cells[r - 1][c] not in ("0", "—"):
            cell.set_facecolor((*_rgb(LEVELS[4 - c].hex), 0.35))


def write_report(fig, png: str | os.PathLike[str] | None = None, pdf: str | os.PathLike[str] | None = None,
                 dpi: int = 150) -> list[Path]:
    """Write the report figure as PNG and/or PDF; return the paths written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    written = []
    for path, kind in ((png, "png"), (pdf, "pdf")):
        if path is None:
            continue
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(target, format=kind, dpi=dpi)
        except OSError as exc:
            raise RiskmapIOError(f"report {target}: cannot write: {exc}") from exc
        written.append(target)
    return written


def write_report_files(out_dir: str | os.PathLike[str], region: Region, levels: pd.DataFrame, *, title: str,
                       issuer: str, run_time: datetime | pd.Timestamp | str, tz: str = "Asia/Shanghai",
                       messages: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write ``report.png``, ``report.pdf`` and ``townships.csv`` (UTF-8, the full table) into ``out_dir``.

    Returns name → path (``png``, ``pdf``, ``townships``), for ``riskmap report``.
    """
    folder = Path(out_dir)
    fig = report_figure(region, levels, title=title, issuer=issuer, run_time=run_time, tz=tz,
                        messages=messages)
    png, pdf = write_report(fig, folder / "report.png", folder / "report.pdf")
    csv = folder / "townships.csv"
    try:
        township_table(region, levels, messages).to_csv(csv, index=False, encoding="utf-8")
    except OSError as exc:
        raise RiskmapIOError(f"report {csv}: cannot write: {exc}") from exc
    return {"png": png, "pdf": pdf, "townships": csv}
