using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.PeftParity;

/// <summary>
/// AdaLoRA trained with a minimal hand-written loop that uses only <see cref="PeftModel"/> and
/// <see cref="ITrainingHooks"/> (as the Trainer will), replaying <c>shared/fixtures/hf/training/llama-adalora</c>
/// (PEFT 0.21 + HF Trainer semantics: AdamW with the no-decay grouping, linear schedule with 2 warm-up steps so step 0
/// runs at lr 0, clipping at 1.0, loss = model loss + orthogonal regulariser, update_and_allocate(step) after the
/// optimizer step and before zero_grad, batch step % 3): every loss, every pre-clip gradient norm, the final adapter
/// tensors (trimmed to the final ranks) and the saved rank_pattern.
/// </summary>
public sealed class AdaLoraTrainingTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static string Dir => Fixtures.Training("llama-adalora");

    private static JsonObject Trajectory => JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "trajectory.json")))!.AsObject();

    [Fact]
    public void Hand_written_loop_replays_the_PEFT_trajectory_and_saves_the_final_ranks()
    {
        using var scope = NewDisposeScope();
        var traj = Trajectory;
        var losses = traj["loss_per_step"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        var norms = traj["grad_norm_before_clip_per_step"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        var optCfg = traj["optimizer"]!;
        var schedCfg = traj["scheduler"]!;
        double baseLr = optCfg["lr"]!.GetValue<double>(), weightDecay = optCfg["weight_decay"]!.GetValue<double>();
        int warmup = schedCfg["num_warmup_steps"]!.GetValue<int>(), total = schedCfg["num_training_steps"]!.GetValue<int>();
        int steps = traj["steps"]!.GetValue<int>();

        using var pm = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny")), Path.Combine(Dir, "initial_adapter"), isTrainable: true);
        pm.train();
        ITrainingHooks hooks = pm;
        var trainable = pm.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        Assert.NotEmpty(trainable);
        bool NoDecay(string n) => n.EndsWith("bias", StringComparison.Ordinal) || n.Contains("norm", StringComparison.Ordinal);
        var groups = new List<TorchSharp.Modules.AdamW.ParamGroup>
        {
            new(trainable.Where(p => !NoDecay(p.name)).Select(p => p.parameter), new TorchSharp.Modules.AdamW.Options { LearningRate = baseLr, weight_decay = weightDecay }),
            new(trainable.Where(p => NoDecay(p.name)).Select(p => p.parameter), new TorchSharp.Modules.AdamW.Options { LearningRate = baseLr, weight_decay = 0 }),
        };
        using var optimizer = optim.AdamW(groups, baseLr, 0.9, 0.999, 1e-8, weightDecay);
        using var batches = SafetensorsFile.Open(Path.Combine(Dir, "batches.safetensors"));

        for (int step = 0; step < steps; step++)
        {
            using var stepScope = NewDisposeScope();
            double lr = step < warmup ? baseLr * step / Math.Max(1, warmup) : baseLr * Math.Max(0.0, (double)(total - step) / Math.Max(1, total - warmup));
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            int b = step % 3;
            var result = pm.forward(new ModelInput
            {
                InputIds = batches.GetTensor($"batch{b}_input_ids"),
                AttentionMask = batches.GetTensor($"batch{b}_attention_mask"),
                Labels = batches.GetTensor($"batch{b}_labels"),
            });
            var extra = hooks.LossTerm();
            Assert.NotNull(extra);
            var loss = result.Loss! + extra;
            output.WriteLine($"step {step}: loss {loss.item<float>():R} (PEFT {losses[step]:R}, diff {Math.Abs(losses[step] - loss.item<float>()):E2})");
            Assert.True(Math.Abs(losses[step] - loss.item<float>()) <= 1e-3, $"step {step}: loss {loss.item<float>()} vs PEFT {losses[step]}");
            loss.backward();
            double norm = nn.utils.clip_grad_norm_(trainable.Select(p => p.parameter), 1.0);
            output.WriteLine($"step {step}: grad norm diff {Math.Abs(norms[step] - norm):E2}");
            Assert.True(Math.Abs(norms[step] - norm) <= 1e-3, $"step {step}: grad norm {norm} vs PEFT {norms[step]}");
            optimizer.step();
            hooks.OnOptimizerStep(step);
            optimizer.zero_grad();
        }

        using var dir = new TempDir();
        pm.SavePretrained(dir.Path);
        var expectedConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "final_adapter", "adapter_config.json")))!.AsObject();
        var actualConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "adapter_config.json")))!.AsObject();
        Assert.True(LoraFixtureParityTests.JsonEquivalent(expectedConfig["rank_pattern"], actualConfig["rank_pattern"]),
            $"rank_pattern: expected {expectedConfig["rank_pattern"]!.ToJsonString()}, wrote {actualConfig["rank_pattern"]?.ToJsonString()}");

        using var expected = SafetensorsFile.Open(Path.Combine(Dir, "final_adapter", "adapter_model.safetensors"));
        using var actual = SafetensorsFile.Open(Path.Combine(dir.Path, "adapter_model.safetensors"));
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var key in expected.Keys)
        {
            Assert.Equal(expected.GetInfo(key).Shape, actual.GetInfo(key).Shape);
            if (expected.GetInfo(key).Shape.Contains(0)) continue;
            output.WriteLine($"{key}: max |diff| {(expected.GetTensor(key) - actual.GetTensor(key)).abs().max().item<float>():E2}");
            TensorAssert.Close(expected.GetTensor(key), actual.GetTensor(key), 5e-3, what: key);
        }

        // The trimmed adapter loads back (modules shrunk to the pattern first) and computes what the trained model does.
        pm.eval();
        using var reloaded = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny")), dir.Path);
        var input = new ModelInput { InputIds = batches.GetTensor("batch0_input_ids"), AttentionMask = batches.GetTensor("batch0_attention_mask") };
        using (no_grad())
        {
            TensorAssert.Close(pm.forward(input).Logits!, reloaded.forward(input).Logits!, 1e-5, input.AttentionMask, "trained vs saved-and-reloaded");
        }
    }

    [Fact]
    public void PEFTs_final_adapter_loads_resized_to_its_rank_pattern_and_saves_identically()
    {
        using var scope = NewDisposeScope();
        var final = Path.Combine(Dir, "final_adapter");
        using var pm = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny")), final);
        var layers = pm.Tuner.TunerLayers().ToDictionary(l => l.Path, l => (AdaLoraLayer)l.Layer);
        Assert.Equal(0, layers["model.layers.1.self_attn.q_proj"].LoraA("default").shape[0]);
        Assert.Equal(2, layers["model.layers.1.self_attn.v_proj"].LoraE("default").shape[0]);
        Assert.Equal(6f, layers["model.layers.0.self_attn.q_proj"].RankNum("default").item<float>()); // the scale keeps init_r
        Assert.DoesNotContain(pm.parameters(), p => p.requires_grad);

        using var dir = new TempDir();
        pm.SavePretrained(dir.Path);
        using var expected = SafetensorsFile.Open(Path.Combine(final, "adapter_model.safetensors"));
        using var actual = SafetensorsFile.Open(Path.Combine(dir.Path, "adapter_model.safetensors"));
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var key in expected.Keys)
        {
            Assert.Equal(expected.GetInfo(key).Shape, actual.GetInfo(key).Shape);
            Assert.True(expected.GetBytes(key).SequenceEqual(actual.GetBytes(key)), $"{key} differs after load + save");
        }
        var expectedConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(final, "adapter_config.json")))!.AsObject();
        var actualConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "adapter_config.json")))!.AsObject();
        foreach (var (key, value) in expectedConfig)
            Assert.True(LoraFixtureParityTests.JsonEquivalent(value, actualConfig[key]), $"adapter_config.json \"{key}\"");
    }
}
