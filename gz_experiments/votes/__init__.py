"""The vote model: a question's answers are a Dirichlet-multinomial over its volunteers.

- `dirichlet_multinomial`: the one home of that assumption's maths (log-likelihood in NumPy and
  TensorFlow from one formula, expected fractions, the predictive distribution of the next N
  votes, drawing votes);
- `information`: what the next volunteers' votes would teach a model (BALD, predictive entropy),
  for acquisition and the prediction table's acquisition columns.
"""
