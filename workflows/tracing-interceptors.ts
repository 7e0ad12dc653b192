/**
 * The workflow interceptors of the traced bundle (scripts/bundle-workflows.js): the OpenTelemetry
 * interceptors of `@temporalio/interceptors-opentelemetry`, except that updates are not wrapped in
 * spans. Its update span awaits around the handler, which moves the update's completion against the
 * workflow's other commands: a history recorded untraced (every workflow started before tracing was
 * turned on, test/histories/training-run-*.json) then fails to replay on a traced worker with
 * "Activity machine does not handle this event: WorkflowExecutionUpdateCompleted". Workflow,
 * child-workflow, activity and signal spans are kept. Not a workflow, just interceptors.
 */
import {
  OpenTelemetryInboundInterceptor,
  OpenTelemetryInternalsInterceptor,
  OpenTelemetryOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry/lib/workflow/index.js';
import type {
  Next,
  UpdateInput,
  WorkflowInboundCallsInterceptor,
  WorkflowInterceptors,
} from '@temporalio/workflow';

class InboundWithoutUpdateSpans extends OpenTelemetryInboundInterceptor {
  override handleUpdate(
    input: UpdateInput,
    next: Next<WorkflowInboundCallsInterceptor, 'handleUpdate'>,
  ): Promise<unknown> {
    return next(input);
  }

  override validateUpdate(
    input: UpdateInput,
    next: Next<WorkflowInboundCallsInterceptor, 'validateUpdate'>,
  ): void {
    next(input);
  }
}

export const interceptors = (): WorkflowInterceptors => ({
  inbound: [new InboundWithoutUpdateSpans()],
  outbound: [new OpenTelemetryOutboundInterceptor()],
  internals: [new OpenTelemetryInternalsInterceptor()],
});
