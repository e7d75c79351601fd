"""Panel routes: one request fanned out to a provider-diverse panel, judged and synthesized."""
