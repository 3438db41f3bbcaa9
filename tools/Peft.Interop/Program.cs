// Interop check, C# half: saves folders with Peft.NET's writers and records what Peft.NET computes on them.
//   dotnet run --project tools/Peft.Interop -- MODELS_DIR OUT_DIR
// MODELS_DIR holds Hugging Face model folders to start from (e.g. the tiny test models); OUT_DIR receives
//   models/<name>/      config.json, model.safetensors, generation_config.json, tokenizer files  (written by C#)
//   adapters/<name>/    adapter_config.json, adapter_model.safetensors of a LoRA / AdaLoRA / (IA)³ / prompt-learning adapter trained 3 steps in C#
//   expected/<name>.safetensors   input_ids, attention_mask, logits (what C# computes on the saved folder)
//   expected/tokenizers.json      ids C# gives for a few strings, per model
//   bf16/lora-adapter/, bf16/expected.safetensors   a LoRA adapter trained on llama-tiny in bfloat16 (float32 adapter weights)
// Then tools/Peft.Interop/check_python.py OUT_DIR loads everything with the Python stack and compares.
using System.Text.Json;
using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Transformers;
using TorchSharp;
using static TorchSharp.torch;

// Quantization: Peft.Interop quant MODELS_DIR OUT_DIR → 4-bit vectors and a QLoRA adapter for check_quant.py
if (args.Length == 3 && args[0] == "quant") return QuantVectors.Write(args[2]) + QLoraAdapter.Write(args[1], args[2]) + FixtureCosines.Write(args[1], args[2]) + PrequantizedFolders.Write(args[1], args[2]);
if (args.Length != 2)
{
    Console.Error.WriteLine("usage: Peft.Interop MODELS_DIR OUT_DIR");
    return 2;
}
string modelsDir = args[0], outDir = args[1];
// Leading / repeated spaces, the empty string and a literal special token: transformers 5's LlamaTokenizer (Metaspace,
// prepend scheme "first") differs there from the Llama-2 tokenizer.json's own Prepend normalizer.
string[] texts = ["Two things are infinite: the universe and human stupidity.", "Hello,  world!\tTabs and ünïcödé — 你好", "A",
    " leading space", "   ", "", "  two  spaces  ", "<s> literal special </s>", "<s>glued"];
var tokenizerIds = new Dictionary<string, object>();
manual_seed(1234);

foreach (var name in new[] { "gpt2-tiny", "opt-tiny", "llama-tiny", "qwen2-tiny", "bert-tiny" })
{
    var src = Path.Combine(modelsDir, name);
    var dst = Path.Combine(outDir, "models", name);
    bool causal = name != "bert-tiny";
    using var model = causal ? AutoModelForCausalLM.FromPretrained(src) : AutoModelForSequenceClassification.FromPretrained(src);
    var tok = AutoTokenizer.FromPretrained(src);
    model.SavePretrained(dst);
    tok.SavePretrained(dst);
    tokenizerIds[name] = texts.Select(t => tok.Encode(t, addSpecialTokens: true)).ToList();
    Expect(model, name, vocab: 900);
}

// Held-out shapes and heads built from configs with random weights, saved by C#; Python recomputes them from the files.
var heldOut = new (string Name, ModelTask Task, string Json)[]
{
    ("llama-gqa-llama3rope", ModelTask.CausalLM, """
        {"model_type":"llama","vocab_size":500,"hidden_size":96,"intermediate_size":160,"num_hidden_layers":3,
         "num_attention_heads":6,"num_key_value_heads":2,"max_position_embeddings":256,"rms_norm_eps":1e-6,
         "tie_word_embeddings":false,"rope_theta":10000.0,
         "rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":64}}
        """),
    ("llama-mqa-linear-headdim-bias-tied", ModelTask.CausalLM, """
        {"model_type":"llama","vocab_size":500,"hidden_size":64,"intermediate_size":96,"num_hidden_layers":2,
         "num_attention_heads":4,"num_key_value_heads":1,"head_dim":24,"attention_bias":true,"mlp_bias":true,
         "max_position_embeddings":128,"tie_word_embeddings":true,"rope_theta":500.0,
         "rope_scaling":{"rope_type":"linear","factor":2.0}}
        """),
    ("qwen2-gqa-tied", ModelTask.CausalLM, """
        {"model_type":"qwen2","vocab_size":500,"hidden_size":96,"intermediate_size":128,"num_hidden_layers":2,
         "num_attention_heads":6,"num_key_value_heads":2,"max_position_embeddings":128,"tie_word_embeddings":true,
         "rope_theta":1000000.0,"use_sliding_window":false}
        """),
    ("mistral-sliding-window", ModelTask.CausalLM, """
        {"model_type":"mistral","vocab_size":500,"hidden_size":64,"intermediate_size":96,"num_hidden_layers":2,
         "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":128,"sliding_window":4,
         "tie_word_embeddings":false}
        """),
    ("gpt2-ninner-layerscale", ModelTask.CausalLM, """
        {"model_type":"gpt2","vocab_size":500,"n_embd":48,"n_layer":3,"n_head":4,"n_inner":100,"n_positions":128,
         "scale_attn_by_inverse_layer_idx":true,"activation_function":"gelu_new"}
        """),
    ("opt-postnorm-project", ModelTask.CausalLM, """
        {"model_type":"opt","vocab_size":500,"hidden_size":64,"word_embed_proj_dim":32,"num_hidden_layers":2,
         "num_attention_heads":4,"ffn_dim":96,"max_position_embeddings":128,"do_layer_norm_before":false,
         "pad_token_id":1,"bos_token_id":2,"eos_token_id":2}
        """),
    ("llama-seqcls", ModelTask.SequenceClassification, """
        {"model_type":"llama","vocab_size":500,"hidden_size":64,"intermediate_size":96,"num_hidden_layers":2,
         "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":128,"pad_token_id":0,"num_labels":3}
        """),
    ("gpt2-tokcls", ModelTask.TokenClassification, """
        {"model_type":"gpt2","vocab_size":500,"n_embd":48,"n_layer":2,"n_head":4,"n_positions":128,"num_labels":4}
        """),
    ("bert-maskedlm", ModelTask.MaskedLM, """
        {"model_type":"bert","vocab_size":500,"hidden_size":48,"num_hidden_layers":2,"num_attention_heads":4,
         "intermediate_size":96,"max_position_embeddings":128,"type_vocab_size":2}
        """),
    ("bert-tokcls", ModelTask.TokenClassification, """
        {"model_type":"bert","vocab_size":500,"hidden_size":48,"num_hidden_layers":2,"num_attention_heads":4,
         "intermediate_size":96,"max_position_embeddings":128,"num_labels":5}
        """),
};
var tasks = new Dictionary<string, string>();
foreach (var (name, task, json) in heldOut)
{
    using var model = ModelFactory.FromConfig(AutoConfig.FromJson(json), task);
    model.SavePretrained(Path.Combine(outDir, "models", name));
    Expect(model, name, vocab: 500);
    tasks[name] = task.ToString();
}

// LoRA adapters trained a few steps in C#, covering the config fields that change the math or the file layout.
var adapterBases = new Dictionary<string, object>();
Adapter("opt-tiny", "opt-lora-csharp", ModelTask.CausalLM,
    new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM });
Adapter("gpt2-tiny", "gpt2-lora-csharp", ModelTask.CausalLM,
    new LoraConfig { R = 4, LoraAlpha = 16, TargetModules = ["c_attn"], TaskType = TaskType.CausalLM, FanInFanOut = true });
Adapter("llama-tiny", "llama-dora-csharp", ModelTask.CausalLM,
    new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = "all-linear", UseDora = true, UseRslora = true, TaskType = TaskType.CausalLM });
Adapter("qwen2-tiny", "qwen2-patterns-bias-csharp", ModelTask.CausalLM, new LoraConfig
{
    R = 4, LoraAlpha = 8, TargetModules = ["q_proj", "k_proj", "down_proj"], RankPattern = new Dictionary<string, int> { ["down_proj"] = 2 },
    AlphaPattern = new Dictionary<string, double> { ["k_proj"] = 3 }, LayersToTransform = [1], LayersPattern = ["layers"],
    Bias = LoraBias.LoraOnly, TaskType = TaskType.CausalLM,
});
Adapter("llama-tiny", "llama-embedding-mts-csharp", ModelTask.CausalLM, new LoraConfig
{
    R = 4, LoraAlpha = 4, TargetModules = ["embed_tokens", "o_proj"], ModulesToSave = ["lm_head"], InitLoraWeights = LoraInit.Gaussian,
    TaskType = TaskType.CausalLM,
});
Adapter("gpt2-tiny", "gpt2-cproj-bias-all-csharp", ModelTask.CausalLM, new LoraConfig
{
    R = 2, LoraAlpha = 4, TargetModules = @".*\.(c_proj|c_fc)", FanInFanOut = true, Bias = LoraBias.All, TaskType = TaskType.CausalLM,
});
Adapter("bert-tiny", "bert-seqcls-rslora-csharp", ModelTask.SequenceClassification, new LoraConfig
{
    R = 4, LoraAlpha = 8, TargetModules = ["query", "value"], UseRslora = true, TaskType = TaskType.SeqCls,
});
// AdaLoRA through its whole schedule (warm-up, budget decrease, final phase): the orthogonal regulariser joins the
// loss and the rank allocator runs after every optimizer step, so the saved files are trimmed to a rank_pattern that
// Python PEFT must apply (resize) when loading.
Adapter("llama-tiny", "llama-adalora-csharp", ModelTask.CausalLM, new AdaLoraConfig
{
    InitR = 4, TargetR = 2, Tinit = 1, Tfinal = 2, DeltaT = 1, TotalStep = 6, LoraAlpha = 8, TargetModules = ["q_proj", "v_proj", "down_proj"],
    TaskType = TaskType.CausalLM,
}, steps: 6);
Adapter("gpt2-tiny", "gpt2-adalora-conv1d-csharp", ModelTask.CausalLM, new AdaLoraConfig
{
    InitR = 3, TargetR = 1, Tinit = 0, Tfinal = 1, DeltaT = 2, TotalStep = 5, LoraAlpha = 6, TargetModules = ["c_attn", "c_fc"],
    FanInFanOut = true, TaskType = TaskType.CausalLM,
}, steps: 5);

// Prompt-learning adapters trained a few steps in C# (saved prompt_embeddings = the encoder output; logits of prompt
// tuning / P-tuning include the virtual positions first).
var llamaTokenizer = AutoTokenizer.FromPretrained(Path.Combine(modelsDir, "llama-tiny"));
Adapter("opt-tiny", "opt-prompt-tuning-csharp", ModelTask.CausalLM, new PromptTuningConfig { NumVirtualTokens = 5, TaskType = TaskType.CausalLM });
Adapter("llama-tiny", "llama-prompt-tuning-text-csharp", ModelTask.CausalLM, new PromptTuningConfig
{
    NumVirtualTokens = 6, PromptTuningInit = PromptTuningInit.Text, PromptTuningInitText = "Answer briefly:",
    TokenizerNameOrPath = Path.Combine(modelsDir, "llama-tiny"), TaskType = TaskType.CausalLM,
    InitTokenizer = text => llamaTokenizer.Encode(text),
});
Adapter("opt-tiny", "opt-p-tuning-mlp-csharp", ModelTask.CausalLM, new PromptEncoderConfig { NumVirtualTokens = 4, EncoderHiddenSize = 32, TaskType = TaskType.CausalLM });
Adapter("llama-tiny", "llama-p-tuning-lstm-csharp", ModelTask.CausalLM, new PromptEncoderConfig
{
    NumVirtualTokens = 3, EncoderReparameterizationType = PromptEncoderReparameterizationType.Lstm, EncoderHiddenSize = 16, TaskType = TaskType.CausalLM,
});
Adapter("llama-tiny", "llama-prefix-tuning-csharp", ModelTask.CausalLM, new PrefixTuningConfig { NumVirtualTokens = 4, TaskType = TaskType.CausalLM });
Adapter("opt-tiny", "opt-prefix-tuning-projection-csharp", ModelTask.CausalLM, new PrefixTuningConfig
{
    NumVirtualTokens = 3, PrefixProjection = true, EncoderHiddenSize = 24, TaskType = TaskType.CausalLM,
});
Adapter("qwen2-tiny", "qwen2-prefix-tuning-csharp", ModelTask.CausalLM, new PrefixTuningConfig { NumVirtualTokens = 2, TaskType = TaskType.CausalLM });
Adapter("bert-tiny", "bert-seqcls-prompt-tuning-csharp", ModelTask.SequenceClassification, new PromptTuningConfig { NumVirtualTokens = 4, TaskType = TaskType.SeqCls });
Adapter("bert-tiny", "bert-seqcls-prefix-tuning-csharp", ModelTask.SequenceClassification, new PrefixTuningConfig { NumVirtualTokens = 3, TaskType = TaskType.SeqCls });

// (IA)³ adapters trained a few steps in C#: OPT Linear (k/v output scaling, fc2 input scaling) and GPT-2 Conv1D
// (PEFT's default targets c_attn + mlp.c_proj, with fan_in_fan_out).
Adapter("opt-tiny", "opt-ia3-csharp", ModelTask.CausalLM, new IA3Config
{
    TargetModules = ["k_proj", "v_proj", "fc2"], FeedforwardModules = ["fc2"], TaskType = TaskType.CausalLM,
});
Adapter("gpt2-tiny", "gpt2-ia3-conv1d-csharp", ModelTask.CausalLM, new IA3Config { FanInFanOut = true, TaskType = TaskType.CausalLM });

// A Trainer checkpoint: 3 steps of opt-tiny LoRA with the Trainer; Python loads trainer_state.json as a TrainerState,
// training_args.json as TrainingArguments, the checkpoint's adapter with PEFT and the optimizer state with safetensors.
{
    var src = Path.Combine(modelsDir, "opt-tiny");
    using var pm = PeftModel.GetPeftModel(AutoModelForCausalLM.FromPretrained(src),
        new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM });
    var tok = AutoTokenizer.FromPretrained(src);
    var rows = Peft.Datasets.Dataset.FromDict(new Dictionary<string, System.Collections.IList> { ["text"] = texts.Concat(texts).ToList() })
        .Map(b => tok.EncodeBatch(b.Column<string>("text"), truncation: true).ToColumns(), batched: true, removeColumns: ["text"]);
    var trainer = new Trainer(pm, new TrainingArguments
    {
        OutputDir = Path.Combine(outDir, "trainer"), MaxSteps = 3, PerDeviceTrainBatchSize = 2, LoggingSteps = 1, SaveSteps = 3,
        LearningRate = 1e-3, WeightDecay = 0.01, DisableTqdm = true,
    }, trainDataset: rows, dataCollator: new DataCollatorForLanguageModeling(tok, mlm: false));
    trainer.Train();
    Expect(pm, "trainer-checkpoint", vocab: 900);
}

// A LoRA adapter trained on a bfloat16 base (float32 adapter weights, PEFT's autocast_adapter_dtype): OUT_DIR/bf16.
Bf16LoraAdapter.Write(modelsDir, outDir);

Directory.CreateDirectory(Path.Combine(outDir, "expected"));
File.WriteAllText(Path.Combine(outDir, "expected", "tokenizers.json"), JsonSerializer.Serialize(new { texts, ids = tokenizerIds }));
File.WriteAllText(Path.Combine(outDir, "expected", "tasks.json"), JsonSerializer.Serialize(tasks));
File.WriteAllText(Path.Combine(outDir, "expected", "adapters.json"), JsonSerializer.Serialize(adapterBases));
Console.WriteLine($"wrote {outDir}");
return 0;

void Expect(nn.Module<ModelInput, ModelOutput> model, string name, int vocab)
{
    using var scope = NewDisposeScope();
    using var noGrad = no_grad();
    model.eval();
    var ids = randint(3, vocab, [2, 11], generator: new Generator(7));
    var mask = ones_like(ids);
    mask[1].narrow(0, 7, 4).fill_(0); // row 1 is right-padded: its last 4 positions are padding
    var logits = model.forward(new ModelInput { InputIds = ids, AttentionMask = mask }).Logits!;
    Directory.CreateDirectory(Path.Combine(outDir, "expected"));
    SafetensorsWriter.Save(Path.Combine(outDir, "expected", name + ".safetensors"),
        new Dictionary<string, Tensor> { ["input_ids"] = ids, ["attention_mask"] = mask, ["logits"] = logits.contiguous() });
}

void Adapter(string baseName, string adapterName, ModelTask task, PeftConfig config, int steps = 3)
{
    var baseModel = ModelFactory.FromPretrained(Path.Combine(modelsDir, baseName), task);
    var pm = PeftModel.GetPeftModel(baseModel, config);
    ITrainingHooks hooks = pm; // AdaLoRA: regulariser and rank allocation; nothing for LoRA
    using var optimizer = optim.AdamW(pm.parameters().Where(p => p.requires_grad), lr: 0.05);
    pm.train();
    for (int step = 0; step < steps; step++)
    {
        using var scope = NewDisposeScope();
        var ids = randint(3, 900, [4, 12], generator: new Generator((ulong)step));
        var labels = task == ModelTask.CausalLM ? ids : randint(0, 5, [4], generator: new Generator((ulong)step + 100));
        var output = pm.forward(new ModelInput { InputIds = ids, AttentionMask = ones_like(ids), Labels = labels });
        optimizer.zero_grad();
        var loss = hooks.LossTerm() is { } extra ? output.Loss! + extra : output.Loss!;
        loss.backward();
        optimizer.step();
        hooks.OnOptimizerStep(step); // after the step, before the next zero_grad (PEFT update_and_allocate)
    }
    pm.SavePretrained(Path.Combine(outDir, "adapters", adapterName));
    Expect(pm, adapterName, vocab: 900);
    adapterBases[adapterName] = new { @base = baseName, task = task.ToString() };
}
