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

    /// <summary>
    /// HF generate's positions (<c>prepare_inputs_for_generation</c>): <c>cumsum(mask) − 1</c>, padding set to 1,
    /// the last <paramref name="queryLen"/> columns (the tokens not yet cached).
    /// </summary>
    public static torch.Tensor GenerationPositionIds(torch.Tensor mask, long queryLen)
    {
        var m = mask.to_type(torch.ScalarType.Int64);
        var pos = (m.cumsum(-1) - 1).masked_fill(m.eq(0), 1);
        return pos.narrow(1, pos.shape[1] - queryLen, queryLen);
    }

    /// <summary>
    /// The positions HF 5.17's plain forward uses when position_ids is None: OPT <c>(cumsum(mask) · mask − 1)[:, past:]</c>
    /// (modeling_opt.py, OPTDecoder.forward); the Llama family and GPT-2 <c>arange(past, past + T)</c> for every row.
    /// </summary>
    public static torch.Tensor HfDefaultPositionIds(string modelType, torch.Tensor mask, long past, long queryLen)
    {
        long b = mask.shape[0];
        if (modelType == "opt")
        {
            var m = mask.to_type(torch.ScalarType.Int64);
            return (m.cumsum(1) * m - 1).narrow(1, past, queryLen);
        }
        return torch.arange(past, past + queryLen, dtype: torch.ScalarType.Int64).unsqueeze(0).expand(b, queryLen);
    }
}
