"""vai_jax.analysis: parameter and multiply-accumulate counts, network comparison."""
from vai_jax.analysis.summary import LayerRow, Summary, count_params, human, summarize

__all__ = ["LayerRow", "Summary", "count_params", "human", "summarize"]
