"""The report's jinja2 templates: report.md and a self-contained report.html (inline CSS, plots as data URIs).

Kept as Python strings rather than template files so that any install of the package carries them.
Both render the same context (render.context): title, intro, setting_table, searches (lines, table and
the best trial's command of each search), runs_table, summary, robustness (note, lines, table; None without
a robustness table), problems and plots; a table is headers +
rows (+ a CSS class per row in HTML).
"""

MARKDOWN = """\
{% macro table(t) %}
| {{ t.headers | map("md_cell") | join(" | ") }} |
|{{ "---|" * (t.headers | length) }}
{% for row in t.rows %}
| {{ row | map("md_cell") | join(" | ") }} |
{% endfor %}
{% endmacro %}
# {{ title }}

{{ intro }}

{% if setting_table %}
## Best run per model and data setting

{{ setting_note }}

{{ table(setting_table) }}
{% endif %}
{% for search in searches %}
## Hyperparameter search

{% for line in search.lines %}
- {{ line }}
{% endfor %}
{% if search.command %}

```bash
{{ search.command }}
```
{% endif %}

{{ table(search.table) }}
{% endfor %}
{% if runs_table.rows %}
## Runs

{{ table(runs_table) }}
{% endif %}
## Summary

{% for line in summary %}
- {{ line }}
{% endfor %}
{% for s in sections %}

## {{ s.title }}

{{ s.note }}

{% for t in s.tables %}
{{ table(t) }}
{% endfor %}
{% endfor %}
{% if robustness %}

## Robustness

{{ robustness.note }}

{% for line in robustness.lines %}
- {{ line }}
{% endfor %}
{% if robustness.table %}

{{ table(robustness.table) }}
{% endif %}
{% if robustness.combined_table %}

{{ table(robustness.combined_table) }}
{% endif %}
{% endif %}
{% if problems %}

## Failed or unfinished runs

{% for line in problems %}
- {{ line }}
{% endfor %}
{% endif %}
{% if plots %}

## Plots
{% for plot in plots %}

**{{ plot.caption }}**

![{{ plot.caption }}]({{ plot.path }})
{% endfor %}
{% endif %}
"""

# Wide tables scroll inside their .scroll box; long unbroken words (paths, run names) wrap, so that
# nothing makes the page itself wider than the window.
CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; vertical-align: top; }
th { background: #f0f0f0; position: sticky; top: 0; }
td:nth-child(-n+3), td:last-child { text-align: left; }
tr.best { background: #eef7ee; font-weight: 600; }
tr.bad { color: #a33; }
.scroll { overflow-x: auto; }
figure { margin: 1.5em 0; } img { max-width: 100%; border: 1px solid #ddd; }
code { background: #f4f4f4; padding: 0 3px; }
h1, h2, p, li, figcaption { overflow-wrap: break-word; }
"""

HTML = """\
{% macro table(t) %}
<div class="scroll"><table><thead><tr>
{%- for h in t.headers %}<th>{{ h | inline }}</th>{% endfor -%}
</tr></thead><tbody>
{%- for row in t.rows %}<tr class="{{ t.classes[loop.index0] if t.classes else '' }}">
{%- for cell in row %}<td>{{ cell | inline }}</td>{% endfor -%}
</tr>{% endfor -%}
</tbody></table></div>
{%- endmacro %}
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ title }}</title>
<style>{{ css }}</style></head><body>
<h1>{{ title | inline }}</h1>
<p>{{ intro | inline }}</p>
{% if setting_table %}
<h2>Best run per model and data setting</h2>
<p>{{ setting_note | inline }}</p>
{{ table(setting_table) }}
{% endif %}
{% for search in searches %}
<h2>Hyperparameter search</h2>
<ul>{% for line in search.lines %}<li>{{ line | inline }}</li>{% endfor %}</ul>
{% if search.command %}
<pre><code>{{ search.command }}</code></pre>
{% endif %}
{{ table(search.table) }}
{% endfor %}
{% if runs_table.rows %}
<h2>Runs</h2>
{{ table(runs_table) }}
{% endif %}
<h2>Summary</h2>
<ul>{% for line in summary %}<li>{{ line | inline }}</li>{% endfor %}</ul>
{% for s in sections %}
<h2>{{ s.title }}</h2>
<p>{{ s.note | inline }}</p>
{% for t in s.tables %}
{{ table(t) }}
{% endfor %}
{% endfor %}
{% if robustness %}
<h2>Robustness</h2>
<p>{{ robustness.note | inline }}</p>
<ul>{% for line in robustness.lines %}<li>{{ line | inline }}</li>{% endfor %}</ul>
{% if robustness.table %}
{{ table(robustness.table) }}
{% endif %}
{% if robustness.combined_table %}
{{ table(robustness.combined_table) }}
{% endif %}
{% endif %}
{% if problems %}
<h2>Failed or unfinished runs</h2>
<ul>{% for line in problems %}<li>{{ line | inline }}</li>{% endfor %}</ul>
{% endif %}
{% if plots %}
<h2>Plots</h2>
{% for plot in plots %}
<figure><figcaption><b>{{ plot.caption | inline }}</b></figcaption><img alt="{{ plot.caption | attr }}" \
src="data:image/png;base64,{{ plot.data }}"></figure>
{% endfor %}
{% endif %}
</body></html>"""
