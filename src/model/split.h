/*
 * split.h — running a model split over several ranks in one process (issue 20): each rank has its
 * own backend, weights (its slices, partition.h) and state, and a step runs every rank's forward
 * at once, one thread per rank, joined by the collectives of their states' comm (backend/comm.h).
 */
#ifndef GLMOE_MODEL_SPLIT_H
#define GLMOE_MODEL_SPLIT_H

#include "model/model.h"

/* forward_batch on the n ranks of a split model, w[r] and st[r] rank r's (each st[r]->comm set,
 * all of one group). Rank 0 runs on the calling thread and writes the logits to host_logits (the
 * other ranks compute none: lm_head is whole on every rank, so rank 0's are the model's). On
 * failure of any rank the others are released from their collectives, the group is reset, every
 * rank's sequences keep their lengths, and err holds the first failing rank's message. */
glmoe_status split_forward_batch(const gm_config *c, const gm_weights *const *w, gm_state *const *st, int32_t n,
                                 const gm_row *rows, int32_t T, float *host_logits, gm_err *err);

#endif
