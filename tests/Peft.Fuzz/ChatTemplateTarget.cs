using System.Text;
using System.Text.Json.Nodes;
using Peft.Testing;
using Peft.Transformers;
using Peft.Transformers.Tokenization.ChatTemplates;

namespace Peft.Fuzz;

/// <summary>
/// Chat templates under fuzz: tokenizer_config.json's <c>chat_template</c> string, loaded with a tokenizer
/// (<see cref="AutoTokenizer.FromPretrained(string)"/>, llama-tiny's tokenizer.json beside it) and rendered with a small
/// fixed conversation twice (with a generation prompt; with tools and <c>enable_thinking</c>). Seeds: the chat templates
/// of the fixture tokenizers (llama3, qwen3) and the reference templates of the chat-template tests, each in a small
/// tokenizer_config.json with its special tokens. Mutations: most edit the template text (Jinja delimiters, keywords,
/// filters, operators, numbers, nesting, splices of another template) and write it back as valid JSON, so the parser
/// and the evaluator see it; the rest mutate the JSON. Every input must render or fail with
/// <see cref="InvalidDataException"/> (a template that does not parse, named by file) or <see cref="TemplateException"/>
/// naming the file (a render error; <see cref="FuzzRunner.IsDocumented"/>).
/// </summary>
public static class ChatTemplateTarget
{
    private static readonly JsonArray Conversation =
    [
        new JsonObject { ["role"] = "system", ["content"] = "Be brief." },
        new JsonObject { ["role"] = "user", ["content"] = "Hello? ünï" },
        new JsonObject { ["role"] = "assistant", ["content"] = "Hi." },
        new JsonObject { ["role"] = "user", ["content"] = "Weather in Paris?" },
    ];

    private static readonly JsonArray Tools =
    [
        new JsonObject
        {
            ["type"] = "function",
            ["function"] = new JsonObject
            {
                ["name"] = "get_weather", ["description"] = "Current weather",
                ["parameters"] = new JsonObject { ["type"] = "object", ["properties"] = new JsonObject { ["city"] = new JsonObject { ["type"] = "string" } } },
            },
        },
    ];

    private static readonly string[] Snippets =
    [
        "{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", "{{-", "-}}", "{% endfor %}", "{% endif %}", "{% else %}",
        "{% elif x %}", "{% for m in messages %}", "{% if m %}", "{% set x = 1 %}", "{% set ns = namespace(a=[]) %}",
        "{% macro f(a) %}{{ f(a) }}{% endmacro %}{{ f(1) }}", "{% break %}", "{% continue %}", "{% for i in range(1000) %}",
        "(", ")", "[", "]", "{", "}", "|", ".", ",", ":", "'", "\"", "~", "+", "-", "*", "**", "/", "//", "%", "==", "!=",
        " and ", " or ", " not ", " in ", " is ", " is defined", " is none", " if ", " else ", "loop.index", "loop.last",
        "messages", "messages[0]", "messages[-1]['content']", "message.content", "tools", "bos_token", "eos_token",
        "raise_exception('x')", "namespace(", "range(", "| tojson", "| length", "| items", "| join(',')", "| map(attribute='role')",
        "| selectattr('role', 'equalto', 'user')", "| trim", "| upper", "| list", "| first", "| last", "| string", "| int",
        "| default('d')", "| replace('a', 'b')", "| no_such_filter", "strftime_now('%Y')", ".split(' ')", ".startswith('a')",
        "[1:2]", "[::-1]", "[::0]", "'a' * 100", "[1] * 1000", "9223372036854775807", "-9223372036854775808",
        "99999999999999999999", "1e308", "-0", "0.5", "None", "True", "none", "\\", "\n", "\t", "\u0000", "\ud7ff",
    ];

    /// <summary>The target.</summary>
    public static FuzzTarget Create() => new()
    {
        Name = "chat_template", FileName = "tokenizer_config.json",
        Seeds = BuildSeeds(),
        PreparesOnce = true,
        Prepare = dir => File.Copy(Path.Combine(Fixtures.Model("llama-tiny"), "tokenizer.json"), Path.Combine(dir, "tokenizer.json")),
        Mutation = Mutate,
        Run = dir =>
        {
            var tok = AutoTokenizer.FromPretrained(dir);
            if (tok.ChatTemplates.Count == 0) return;
            tok.ApplyChatTemplate(Conversation, addGenerationPrompt: true);
            tok.ApplyChatTemplate(Conversation, tools: Tools,
                templateVariables: new Dictionary<string, JsonNode?>(StringComparer.Ordinal) { ["enable_thinking"] = false });
        },
    };

    private static List<byte[]> BuildSeeds()
    {
        var seeds = new List<byte[]>();
        var fixtures = Path.Combine(Fixtures.Shared, "fixtures", "tokenizers");
        foreach (var dir in Directory.GetDirectories(fixtures).Order(StringComparer.Ordinal))
        {
            var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "tokenizer_config.json")))!.AsObject();
            if (cfg["chat_template"] is not JsonValue) continue;
            var seed = new JsonObject { ["chat_template"] = cfg["chat_template"]!.DeepClone() };
            foreach (var key in new[] { "bos_token", "eos_token", "pad_token", "unk_token", "additional_special_tokens" })
                if (cfg[key] is { } v) seed[key] = v.DeepClone();
            seeds.Add(Encoding.UTF8.GetBytes(seed.ToJsonString()));
        }
        var refs = Path.Combine(AppContext.BaseDirectory, "ChatTemplateSeeds");
        foreach (var f in Directory.GetFiles(refs, "*.jinja").Order(StringComparer.Ordinal))
        {
            var seed = new JsonObject { ["chat_template"] = File.ReadAllText(f), ["bos_token"] = "<s>", ["eos_token"] = "</s>" };
            seeds.Add(Encoding.UTF8.GetBytes(seed.ToJsonString()));
        }
        return seeds;
    }

    // 3 in 4 inputs edit the template text and keep the JSON valid; the others mutate the file as JSON or bytes.
    private static byte[] Mutate(Mutator m, byte[] seed, byte[] other)
    {
        var rng = m.Rng;
        int kind = rng.Next(8);
        if (kind == 6) return m.MutateJson(seed, other);
        if (kind == 7) return m.Mutate(seed, other);
        var cfg = JsonNode.Parse(seed)!.AsObject();
        var template = cfg["chat_template"]!.GetValue<string>();
        var otherTemplate = JsonNode.Parse(other)?["chat_template"]?.GetValue<string>() ?? "";
        // half the edits insert a balanced statement (so the template still parses and the evaluator runs it)
        for (int n = 1 + rng.Next(3); n > 0; n--)
            template = rng.Next(2) == 0 ? InsertStatement(rng, template) : EditTemplate(rng, template, otherTemplate);
        cfg["chat_template"] = template;
        return Encoding.UTF8.GetBytes(cfg.ToJsonString());
    }

    private static readonly string[] Operands =
    [
        "messages", "messages[0]", "messages[-1]", "messages[0]['content']", "messages | length", "tools", "tools[0]",
        "bos_token", "eos_token", "add_generation_prompt", "enable_thinking", "undefined_name", "none", "true", "1", "-1",
        "0", "2.5", "'s'", "''", "[]", "[1, 'a', none]", "{}", "{'k': 1}", "namespace(a=1)", "range(3)", "range(-5)",
        "loop", "m", "message", "9223372036854775807", "1e308", "'x' * 3", "[messages] * 2", "(1, 2)",
    ];

    private static readonly string[] Combinators =
    [
        " + ", " - ", " * ", " / ", " // ", " % ", " ** ", " ~ ", " == ", " != ", " < ", " > ", " and ", " or ", " in ",
        " is ", "|tojson|", "|length", "|first", "|last", "|list", "|string", "|int", "|float", "|trim", "|items", "|join(', ')",
        "|map(attribute='content')", "|selectattr('role')", "|reject", "|unique", "|sort", "|reverse", "|capitalize",
        "|default(0)", "|safe", "|indent(2)", "|batch(2)", "|sum", "|max", "|dictsort", ".content", ".role", ".items()",
        ".keys()", ".get('k')", ".split()", ".strip()", ".upper()", ".startswith('a')", "[0]", "[1:]", "[::-1]", "['role']",
    ];

    // "{{ a OP b }}", "{% if a OP b %}x{% endif %}", "{% for x in a OP b %}{{ x }}{% endfor %}" or "{% set v = ... %}".
    private static string InsertStatement(Random rng, string t)
    {
        var expr = new StringBuilder(Operands[rng.Next(Operands.Length)]);
        for (int k = rng.Next(4); k > 0; k--)
        {
            var c = Combinators[rng.Next(Combinators.Length)];
            expr.Append(c);
            if (c.StartsWith(' ') || c.EndsWith('|')) expr.Append(Operands[rng.Next(Operands.Length)]);
        }
        string e = expr.ToString();
        string stmt = rng.Next(4) switch
        {
            0 => "{{ " + e + " }}",
            1 => "{% if " + e + " %}x{% else %}y{% endif %}",
            2 => "{% for x in " + e + " %}{{ x }}{{ loop.index }}{% endfor %}",
            _ => "{% set v = " + e + " %}{{ v }}",
        };
        // at a block boundary: after a "%}" or "}}" (or at the start)
        var ends = new List<int> { 0 };
        for (int i = t.IndexOf("}", StringComparison.Ordinal); i >= 0 && ends.Count < 4000; i = t.IndexOf("}", i + 1, StringComparison.Ordinal))
            if (i > 0 && (t[i - 1] == '%' || t[i - 1] == '}')) ends.Add(i + 1);
        int p = ends[rng.Next(ends.Count)];
        return t[..p] + stmt + t[p..];
    }

    private static string EditTemplate(Random rng, string t, string other)
    {
        int At(string s) => rng.Next(s.Length + 1);
        switch (rng.Next(7))
        {
            case 0: // insert a Jinja fragment
            {
                int p = At(t);
                return t[..p] + Snippets[rng.Next(Snippets.Length)] + t[p..];
            }
            case 1: // delete a range
            {
                if (t.Length == 0) return t;
                int p = rng.Next(t.Length), len = Math.Min(t.Length - p, 1 + rng.Next(32));
                return t.Remove(p, len);
            }
            case 2: // duplicate a range (unbalances blocks, repeats loops)
            {
                if (t.Length == 0) return t;
                int p = rng.Next(t.Length), len = Math.Min(t.Length - p, 1 + rng.Next(200));
                int q = At(t);
                return t[..q] + t.Substring(p, len) + t[q..];
            }
            case 3: // splice with another template
            {
                int p = At(t), q = other.Length == 0 ? 0 : rng.Next(other.Length);
                return t[..p] + other[q..Math.Min(other.Length, q + rng.Next(400))] + t[p..];
            }
            case 4: // deep nesting
            {
                int depth = rng.Next(2) == 0 ? 1 + rng.Next(64) : 1000 + rng.Next(100_000);
                string open = rng.Next(3) switch { 0 => "(", 1 => "[", _ => "{% if true %}" };
                int p = At(t);
                return t[..p] + string.Concat(Enumerable.Repeat(open, depth)) + t[p..];
            }
            case 5: // replace a number or string literal's content
            {
                int p = At(t);
                string[] values = ["0", "-1", "1000000", "4294967297", "9223372036854775807", "1e308", "'x' * 70000000", "range(100000000)"];
                return t[..p] + values[rng.Next(values.Length)] + t[p..];
            }
            default: // swap two ranges
            {
                if (t.Length < 2) return t;
                int a = rng.Next(t.Length), b = rng.Next(t.Length);
                if (a > b) (a, b) = (b, a);
                return t[..a] + t[b..] + t[a..b];
            }
        }
    }
}
