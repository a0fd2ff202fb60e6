"""Promote stage: register the candidate in the MLflow Model Registry and move the `champion`
alias only when it passes the gates (BRIEF section 5). See docs/promotion.md.

`gates.decide` is the pure decision, `model_card.build_model_card` the version description,
`stage.run_promote` the stage, `command.register` the `landcover promote` subcommand."""
