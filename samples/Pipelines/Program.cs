// Peft.NET pipelines: every task of transformers' `pipeline(task, model=...)` that Peft.NET ships, a few lines each.
//
//   text-generation       greedy completion, streaming (TextStreamer), and chat input rendered with a chat template
//   text-classification   label + score, and every label's score (top_k=None)
//   token-classification  NER with each aggregation strategy (none / simple / first / average / max)
//   fill-mask             the top-3 fillers of [MASK]
//   question-answering    the best answer span in a context (transformers 4.x's extractive QA)
//   feature-extraction    one hidden-state vector per token
//
// Models: by default tiny random-weight models shipped in samples/data/models (gpt2-tiny, llama-tiny, bert-tiny — a
// 5-topic classifier —, bert-ner-tiny, bert-qa-tiny; 3.4 MB, copied next to the program at build). Their weights are
// random, so the *answers* are noise; the calls and the shape of every result are those a real checkpoint gives.
// To run on real checkpoints, give each task a folder or a hub id (taken from, or downloaded into, the HF cache):
//
//   dotnet run --project samples/Pipelines [-- --models DIR] [--smoke]
//             [--generation ID] [--chat ID] [--classification ID] [--ner ID] [--fill-mask ID] [--qa ID]
//   e.g. --generation gpt2 --chat Qwen/Qwen2.5-0.5B-Instruct --classification distilbert-base-uncased-finetuned-sst-2-english
//
// --smoke generates fewer tokens (CI). Results print one per line as "<task> | <result>".
using System.Text.Json.Nodes;
using Peft.Samples;
using Peft.Transformers;
using Peft.Transformers.Hub;

string? modelsDir = null;
bool smoke = false;
var overrides = new Dictionary<string, string>();
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--models": modelsDir = args[++i]; break;
        case "--smoke": smoke = true; break;
        case "--generation" or "--chat" or "--classification" or "--ner" or "--fill-mask" or "--qa": overrides[args[i][2..]] = args[++i]; break;
        default: throw new ArgumentException($"unknown argument '{args[i]}'");
    }
}
modelsDir ??= DefaultModelsDir();
string Model(string task, string fixture) => overrides.TryGetValue(task, out var id) ? Local(id) : Path.Combine(modelsDir, fixture);
int maxNew = smoke ? 6 : 16;

// text-generation ------------------------------------------------------------------------------------------------
// Python: gen = pipeline("text-generation", model="gpt2"); gen("Two things are infinite:", max_new_tokens=16, do_sample=False)
using (var gen = Pipeline.TextGeneration(Model("generation", "gpt2-tiny")))
{
    const string prompt = "Two things are infinite:";
    var greedy = new GenerationConfig { MaxNewTokens = maxNew, DoSample = false };
    string full = gen.Run(prompt, greedy)[0].GeneratedText!;
    Print("text-generation", full);

    // Python: TextIteratorStreamer / TextStreamer — pieces arrive as they are decoded
    string streamed = string.Concat(gen.Stream(prompt, greedy));
    Print("text-generation stream", $"{streamed}  (same as the non-streamed continuation: {prompt + streamed == full})");
}

// text-generation with chat input ------------------------------------------------------------------------------------
// Python: chat = pipeline("text-generation", model=m); chat([{"role": "user", "content": "..."}])[0]["generated_text"]
// The tiny fixture has no chat template, so the sample sets a ChatML one (Python: tok.chat_template = "..."); a real
// instruct model brings its own in tokenizer_config.json / chat_template.jinja.
{
    string dir = Model("chat", "llama-tiny");
    var tok = AutoTokenizer.FromPretrained(dir);
    tok.ChatTemplate ??= "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}" +
                         "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    using var model = AutoModelForCausalLM.FromPretrained(dir);
    var chat = (TextGenerationPipeline)Pipeline.Create("text-generation", model, tok);
    var messages = new JsonArray(
        new JsonObject { ["role"] = "system", ["content"] = "You answer in one sentence." },
        new JsonObject { ["role"] = "user", ["content"] = "What is LoRA?" });
    var config = new GenerationConfig { MaxNewTokens = maxNew, DoSample = false };
    Print("chat template", tok.ApplyChatTemplate(messages, addGenerationPrompt: true).ReplaceLineEndings("\\n"));
    var reply = chat.RunChat(messages, config)[0];
    Print("chat conversation", reply.Conversation.ToJsonString());
    string streamedReply = string.Concat(chat.StreamChat(messages, config));
    Print("chat stream", $"{streamedReply}  (same as the reply: {streamedReply == reply.Reply})");
}

// text-classification ----------------------------------------------------------------------------------------------
// Python: clf = pipeline("text-classification", model=m); clf(text); clf(text, top_k=None)
using (var clf = Pipeline.TextClassification(Model("classification", "bert-tiny")))
{
    const string text = "The computer crashed again before I could save my work.";
    var best = clf.Run(text, topK: 1)[0];
    Print("text-classification", $"{best.Label} {best.Score:F4}");
    Print("text-classification all", string.Join(", ", clf.Run(text, topK: null).Select(r => $"{r.Label} {r.Score:F4}")));
}

// token-classification (NER) -----------------------------------------------------------------------------------------
// Python: ner = pipeline("ner", model=m, aggregation_strategy="simple"); ner(text)
using (var ner = Pipeline.TokenClassification(Model("ner", "bert-ner-tiny")))
{
    const string text = "Ada Lovelace worked with Charles Babbage in London.";
    foreach (var strategy in Enum.GetValues<AggregationStrategy>())
    {
        var entities = ner.Run(text, strategy);
        Print($"ner {strategy.ToString().ToLowerInvariant()}", $"{entities.Count} entities" + string.Concat(entities.Take(3).Select(e =>
            $"; {e.Entity} '{e.Word}' [{e.Start},{e.End}) {e.Score:F3}")));
    }
}

// fill-mask ----------------------------------------------------------------------------------------------------------
// Python: fill = pipeline("fill-mask", model=m); fill("The meaning of life is [MASK].", top_k=3)
using (var fill = Pipeline.FillMask(Model("fill-mask", "bert-tiny")))
{
    foreach (var r in fill.Run("The meaning of life is [MASK].", topK: 3))
        Print("fill-mask", $"{r.TokenStr} {r.Score:F4} \"{r.Sequence}\"");
}

// question-answering -------------------------------------------------------------------------------------------------
// Python: qa = pipeline("question-answering", model=m); qa(question=q, context=c)
using (var qa = Pipeline.QuestionAnswering(Model("qa", "bert-qa-tiny")))
{
    const string context = "Ada Lovelace wrote the first computer program in 1843 for the Analytical Engine.";
    var a = qa.Run("When was the first program written?", context)[0];
    Print("question-answering", $"'{a.Answer}' [{a.Start},{a.End}) {a.Score:F4}");
}

// feature-extraction -------------------------------------------------------------------------------------------------
// Python: fe = pipeline("feature-extraction", model=m); fe(text)  -> [1][tokens][hidden]
using (var fe = Pipeline.FeatureExtraction(Model("classification", "bert-tiny")))
{
    var features = fe.Extract("Pipelines in C#");
    Print("feature-extraction", $"{features.Length} tokens x {features[0].Length} dims, first values {string.Join(", ", features[0].Take(3).Select(v => v.ToString("F4")))}");
}
Console.WriteLine("done");
return 0;

static void Print(string task, string result) => Console.WriteLine($"{task,-24} | {result}");

// A folder as given; a hub id from the HF cache or downloaded into it with a progress bar.
static string Local(string pathOrId)
{
    if (Directory.Exists(pathOrId)) return pathOrId;
    var bar = new DownloadProgressBar();
    string dir = HubDownloader.DownloadModel(pathOrId, new HubDownloadOptions { Progress = bar });
    bar.Finish();
    return dir;
}

// The tiny models shipped with the sample (samples/data/models, copied next to the program by the build).
static string DefaultModelsDir()
{
    string dir = Path.Combine(AppContext.BaseDirectory, "data", "models");
    return Directory.Exists(dir) ? dir : throw new DirectoryNotFoundException($"{dir} is missing (it is copied there by the build); pass --models DIR");
}
