"""Expected outputs of small Jinja snippets, rendered with jinja2 configured as transformers 5.17 configures it for chat
templates (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, tojson = json.dumps with
ensure_ascii=False, raise_exception). Needs only jinja2 (3.1.6 made the committed file):
    python3 make_jinja_feature_refs.py OUT.json
"""
import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.exceptions import TemplateError

def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

def raise_exception(message):
    raise TemplateError(message)

env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception

VARS = {"messages": [{"role": "system", "content": " sys "}, {"role": "user", "content": "Hi ünïcode 🌍", "n": 3},
                     {"role": "assistant", "content": "ok", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1, "b": [True, None, 2.5]}}}]}],
        "d": {"z": 1, "a": "x\"y", "nested": {"k": [1, 2]}}, "n": 7, "f": 2.0, "s": "  Hello World  ", "empty": [], "none": None}

SNIPPETS = {
    "print_values": "{{ none }}|{{ true }}|{{ false }}|{{ f }}|{{ 1.5e-7 }}|{{ d }}|{{ messages[2].tool_calls }}|{{ [1, 'a', none] }}|{{ (1, 2) }}|{{ undefined_var }}|",
    "tojson": "{{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ messages[1] | tojson }}|{{ 'a\\nb\\t\\u0001' | tojson }}|{{ d | tojson(sort_keys=true) }}|{{ [] | tojson }}|{{ {} | tojson(indent=4) }}",
    "loop": "{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}/{{ loop.previtem.role if loop.previtem is defined else '-' }}/{{ loop.nextitem.role if loop.nextitem is defined else '-' }};{% endfor %}",
    "loop_filter_else_break": "{% for m in messages if m.role != 'system' %}{{ m.role }}{% if loop.last %}!{% endif %}{% else %}none{% endfor %}|{% for x in empty %}x{% else %}empty{% endfor %}|{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 4 %}{% break %}{% endif %}{{ i }}{% endfor %}",
    "scoping_namespace": "{% set c = 0 %}{% set ns = namespace(c=0, found=false) %}{% for m in messages %}{% set c = c + 1 %}{% set ns.c = ns.c + 1 %}{% if m.role == 'user' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ c }} {{ ns.c }} {{ ns.found }}",
    "macro": "{% macro render(m, prefix='> ') %}{{ prefix }}{{ m.role | upper }}: {{ m.content | trim }}{% endmacro %}{% for m in messages %}{{ render(m) }}{{ render(m, prefix='* ') }}\n{% endfor %}",
    "slicing": "{{ messages[1:] | length }}|{{ messages[::-1][0].role }}|{{ 'abcdef'[1:4] }}|{{ 'abcdef'[::-1] }}|{{ 'abcdef'[-2:] }}|{{ [1,2,3,4,5][::2] }}|{{ [1,2,3][5:] }}|{{ 'héllo'[1] }}",
    "string_methods": "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ s.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a b c'.split(' ', 1) }}|{{ s.upper() }}|{{ s.lower() }}|{{ \"hello world's\".title() }}|{{ s.startswith('  He') }}|{{ s.endswith(('x', '  ')) }}|{{ 'xxhixx'.strip('x') }}|{{ 'a-b-c'.replace('-', '+') }}",
    "filters": "{{ s | trim }}|{{ messages | length }}|{{ 'abc' | upper }}|{{ 'ABC' | lower }}|{{ 'a-b' | replace('-', '_') }}|{{ undefined_var | default('dflt') }}|{{ '' | default('empty', true) }}|{{ d | items | list }}|{{ ['a', 'b'] | join(', ') }}|{{ 5 | string }}|{{ messages | first }}|{{ [1,2,3] | last }}|{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }}|{{ messages | rejectattr('role', 'eq', 'user') | map(attribute='role') | join('+') }}|{{ messages | map(attribute='n', default=0) | list }}|{{ '3' | int + 1 }}|{{ -3 | abs }}|{{ [3,1,2] | sort }}|{{ 'x' * 3 }}|{{ 'line1\nline2' | indent(2) }}",
    "tests": "{{ none is none }}|{{ n is number }}|{{ n is integer }}|{{ f is float }}|{{ s is string }}|{{ d is mapping }}|{{ messages is sequence }}|{{ s is sequence }}|{{ d is iterable }}|{{ undefined_var is defined }}|{{ n is odd }}|{{ n is even }}|{{ n is divisibleby 7 }}|{{ 'tool_calls' in messages[2] }}|{{ 'x' not in s }}|{{ true is boolean }}|{{ n is not string }}",
    "operators": "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2.0 }} {{ 'a' ~ 1 ~ none }} {{ [1] + [2] }} {{ 3 > 2 and 'yes' or 'no' }} {{ none or 'fallback' }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ not empty }} {{ 'yes' if empty else 'no' }}",
    "whitespace": "A\n  {% if true %}\n    B\n  {% endif %}\nC {{- ' D ' -}} E\n{%- if true %} F {% endif -%}\n  G\n{# comment #}\nH\n   {%+ if true %}I{% endif %}\n",
    "set_block_and_dict": "{% set x %}inner {{ n }}{% endset %}[{{ x }}]{% set dd = {'k': 1, 'j': [1, 2]} %}{{ dd.k }}{{ dd['j'][1] }}{{ dd.get('zz', 'none') }}{% for k, v in dd.items() %}{{ k }}={{ v }};{% endfor %}{% set a, b = 1, 2 %}{{ a + b }}",
    "raise": "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported: ' ~ messages[0].content) }}{% endif %}",
    "undefined_attribute_error": "{{ messages[5].content }}",
}

out = {"jinja2": __import__("jinja2").__version__, "variables": VARS, "cases": {}}
for name, src in SNIPPETS.items():
    case = {"template": src}
    try:
        case["text"] = env.from_string(src).render(**VARS)
    except Exception as e:
        case["error"] = type(e).__name__ + ": " + str(e)
    out["cases"][name] = case
json.dump(out, open(sys.argv[1], "w", encoding="utf-8"), ensure_ascii=False, indent=1)
print("wrote", len(SNIPPETS), "cases")
