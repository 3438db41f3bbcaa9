using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Testing;
using Peft.Transformers;
using TorchSharp;

namespace Peft.Transformers.Tests.Models;

internal static class ModelTestUtil
{
    public static ModelTask TaskOf(string name) => name switch
    {
        "bert-tiny" => ModelTask.SequenceClassification,
        "bert-ner-tiny" => ModelTask.TokenClassification,
        "bert-qa-tiny" => ModelTask.QuestionAnswering,
        _ => ModelTask.CausalLM,
    };

    public static bool IsCausal(string name) => TaskOf(name) == ModelTask.CausalLM;

    public static PreTrainedModel Load(string name, FromPretrainedOptions? options = null) =>
        ModelFactory.FromPretrained(Fixtures.Model(name), TaskOf(name), options);

    public static Dictionary<string, torch.Tensor> Reference(string name)
    {
        using var f = SafetensorsFile.Open(Fixtures.Reference(name));
        return f.ReadAll();
    }

    public static ModelInput ReferenceInput(string name, Dictionary<string, torch.Tensor> r) => new()
    {
        InputIds = r["input_ids"],
        AttentionMask = r["attention_mask"],
        TokenTypeIds = r.GetValueOrDefault("token_type_ids"),
        Labels = r.GetValueOrDefault("labels"),
    };
}
