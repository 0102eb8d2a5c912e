// Mirror of CloudStack main (Apache License 2.0) for compiling against in
// provided scope: only the members the xenha adapters use, with CloudStack's
// packages and signatures. Never packaged; CloudStack's class is used at run time.
// Upstream file and commit: java-shim/cloudstack-api/UPSTREAM.tsv.
package com.cloud.agent;

import com.cloud.agent.api.AgentControlAnswer;
import com.cloud.agent.api.AgentControlCommand;
import com.cloud.agent.api.Answer;
import com.cloud.agent.api.Command;
import com.cloud.agent.api.StartupCommand;
import com.cloud.exception.ConnectionException;
import com.cloud.host.Host;
import com.cloud.host.Status;

/**
 * Mirror of CloudStack's {@code Listener} (engine/components-api): every
 * method, because the shim implements it. The two default overloads are
 * upstream's too.
 */
public interface Listener {
    boolean processAnswers(long agentId, long seq, Answer[] answers);

    default boolean processAnswers(long agentId, String uuid, String name, long seq, Answer[] answers) {
        return processAnswers(agentId, seq, answers);
    }

    boolean processCommands(long agentId, long seq, Command[] commands);

    AgentControlAnswer processControlCommand(long agentId, AgentControlCommand cmd);

    void processHostAdded(long hostId);

    void processConnect(Host host, StartupCommand cmd, boolean forRebalance) throws ConnectionException;

    boolean processDisconnect(long agentId, Status state);

    default boolean processDisconnect(long agentId, String uuid, String name, Status state) {
        return processDisconnect(agentId, state);
    }

    void processHostAboutToBeRemoved(long hostId);

    void processHostRemoved(long hostId, long clusterId);

    boolean isRecurring();

    int getTimeout();

    boolean processTimeout(long agentId, long seq);
}
