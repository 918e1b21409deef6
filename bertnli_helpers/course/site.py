"""The course as a small site that works offline: one HTML page per executed notebook, and an
``index.html`` that links them with their key numbers.

nbconvert's stock page loads the Jupyter widget manager (and require.js and MathJax) from a CDN,
so without a network every widget output, the course's views and its progress bars alike, is an
empty box. Here each page inlines the widget manager the package vendors
(``static/html-manager``, BSD-3-Clause), which renders the widget state nbclient saved in the
notebook: the views as they were left, the progress bars at their final count. Each page is one
self-contained file, so a teacher can hand out a single page.
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WIDGET_MANAGER_JS = HERE / "static" / "html-manager" / "embed.js"
TEMPLATES = HERE / "templates"
TEMPLATE_NAME = "bertnli_offline"
INDEX_FILE = "index.html"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _widget_state(nb: Any) -> dict[str, Any]:
    return nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def _is_hidden(state: dict[str, Any], model: dict[str, Any]) -> bool:
    layout_id = str(model.get("state", {}).get("layout", "")).removeprefix("IPY_MODEL_")
    layout = state.get(layout_id, {}).get("state", {})
    return layout.get("visibility") == "hidden" or layout.get("display") == "none"


def settle_widget_outputs(nb: Any) -> Any:
    """What the page shows for each widget output, as JupyterLab showed it when the run ended:
    outputs of widgets the notebook hid (a finished ``tqdm(leave=False)`` bar) are dropped, and
    those whose widget state was not saved keep only their static fallback (``text/html`` or
    ``text/plain``) instead of an empty box."""
    state = _widget_state(nb)
    for cell in nb.cells:
        kept = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            model = state.get(view.get("model_id")) if view else None
            if view and model is None:
                del output["data"][WIDGET_VIEW]
            if not (model and _is_hidden(state, model)):
                kept.append(output)
        if "outputs" in cell:
            cell.outputs = kept
    return nb


def notebook_page(executed: Path) -> Path:
    """Write ``executed``'s HTML page beside it (same name, ``.html``); returns its path."""
    import nbformat
    from nbconvert import HTMLExporter

    from bertnli_helpers.files import atomic_write_text

    exporter = HTMLExporter(template_name=TEMPLATE_NAME, extra_template_basedirs=[str(TEMPLATES)])
    resources = {"bertnli_widget_manager": WIDGET_MANAGER_JS.read_text(encoding="utf-8")}
    nb = settle_widget_outputs(nbformat.read(executed, as_version=4))
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    page = executed.with_suffix(".html")
    atomic_write_text(page, body)
    return page


def notebook_title(executed: Path) -> str:
    """The notebook's first heading (``3. Truncation strategies``), else its file name."""
    import nbformat

    if executed.exists():
        for cell in nbformat.read(executed, as_version=4).cells:
            if cell.cell_type == "markdown":
                for line in cell.source.splitlines():
                    if line.startswith("#"):
                        return line.lstrip("#").strip()
    return executed.stem


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _row(output: Path, row: dict[str, Any], format_value: Any) -> str:
    name = row["notebook"]
    page = output / f"{name}.html"
    title = html.escape(notebook_title(output / f"{name}.ipynb"))
    link = f'<a href="{html.escape(page.name)}">{title}</a>' if page.exists() else title
    numbers = "".join(f"<li><code>{html.escape(str(k))}</code> {html.escape(format_value(v))}</li>"
                      for k, v in row["key numbers"].items())
    status = html.escape(row["status"]) + (f": {html.escape(row['error'])}"
                                           if row.get("error") else "")
    return (f'<tr class="notebook" data-notebook="{html.escape(name)}"><td>{link}<br>'
            f'<small><a href="{html.escape(name)}.ipynb">{html.escape(name)}.ipynb</a></small>'
            f'</td><td class="num">{_duration(row["seconds"])}</td>'
            f'<td class="status-{html.escape(row["status"])}">{status}</td>'
            f"<td><ul>{numbers}</ul></td></tr>")


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.45em .6em;text-align:left;vertical-align:top}
th{background:#f4f6fa}td.num{text-align:right;white-space:nowrap}
ul{margin:0;padding-left:1.1em}code{font-size:.92em}
.status-ok{color:#1a7f37}.status-failed{color:#b42318;font-weight:bold}
.status-interrupted{color:#9a6700;font-weight:bold}
.meta{color:#555}a{color:#1f5fbf}
"""


def index_page(output: Path, summary: Sequence[dict[str, Any]], *, profile: str, model: str,
               format_value: Any = str) -> Path:
    """Write ``output/index.html``: the course run's summary table with one link per notebook,
    what it ran with (profile, model) and how long it took."""
    from bertnli_helpers.files import atomic_write_text

    total = sum(row["seconds"] for row in summary)
    ok = sum(row["status"] == "ok" for row in summary)
    rows = "".join(_row(output, row, format_value) for row in summary)
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bertnli course: fine-tuning BERT for natural language inference</title>
<style>{_STYLE}</style></head>
<body>
<h1>Fine-tuning BERT for natural language inference</h1>
<p class="meta">The <code>bertnli</code> course, executed: profile
<b id="profile">{html.escape(profile)}</b>, model <b id="model">{html.escape(model)}</b>,
{ok} of {len(summary)} notebooks ran,
<b id="total-time">{_duration(total)}</b> in all (finished {html.escape(when)}).</p>
<table id="summary"><thead><tr><th>notebook</th><th>time</th><th>status</th>
<th>key numbers</th></tr></thead><tbody>
{rows}
</tbody><tfoot><tr><th>total</th><td class="num">{_duration(total)}</td><td></td><td></td></tr>
</tfoot></table>
<p class="meta">Each page is the notebook as it ran, with its figures and its widgets in the
state they were left in; they work without a network. To change inputs and play with the widgets,
open the notebooks in JupyterLab (<code>make lab</code>).</p>
</body></html>
"""
    path = output / INDEX_FILE
    atomic_write_text(path, body)
    return path
