"""The leaves every other layer may use: number formatting (`numbers`), names and
did-you-mean (`names`), the table of diagnostic codes (`codes`) and the JSON form of attrs
values (`serialize`). Nothing here imports another genaisdk module but `genaisdk.diagnostics`."""
